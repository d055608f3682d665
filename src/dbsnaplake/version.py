"""The version of dbsnaplake."""

__version__ = "0.1.0"
