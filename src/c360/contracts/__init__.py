"""Data shapes: the one place where source schemas, events and serving tables are defined."""
