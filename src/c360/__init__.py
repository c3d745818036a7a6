"""c360: a real-time Customer 360 on a Lambda architecture (batch, speed and serving layers)."""

__version__ = "0.1.0"
