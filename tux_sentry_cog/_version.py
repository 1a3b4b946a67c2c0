"""The package version, read by the build and the system context."""

__version__ = "0.1.0"
