"""Mailwarden: hosted email for many domains that keeps serving while under attack."""

__all__ = ["__version__"]

__version__ = "0.1.0"
