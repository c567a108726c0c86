"""coreseal: keeps crash dumps sealed."""

__version__ = "0.1.0"
