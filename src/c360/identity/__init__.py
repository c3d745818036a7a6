"""Identity resolution: which records and identifiers belong to the same person."""
