"""Writers turning simulated days into the sources' native formats, atomically."""
