"""Wrapping keys: providers make and keep them, the cache holds the host's
copies. Nothing here knows about dumps."""
