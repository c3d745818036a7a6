"""The batch layer: recompute every profile from the lake for a date, then publish it."""
