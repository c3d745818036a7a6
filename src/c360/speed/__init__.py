"""The speed layer: pure feature updates, the stream worker and file replay into the log."""
