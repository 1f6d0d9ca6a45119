"""The gateway: the one pipeline every model call runs through (see pipeline.py)."""
