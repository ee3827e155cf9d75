"""The package's version: a leaf module every stage may read (the server extension shows it)."""

__version__ = "0.1.0"
