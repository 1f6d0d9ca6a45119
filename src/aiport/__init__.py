"""aiport: a self-hosted AI platform for organizations."""

__version__ = "0.1.0"
