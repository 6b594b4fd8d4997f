"""The tool's version, recorded with every stored scan."""

__version__ = "0.1.0"
