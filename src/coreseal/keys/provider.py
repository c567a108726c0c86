"""What every key provider offers. Providers know keys, never dumps."""

from typing import Protocol

from ..wrapkey import WrappingKey


class KeyNotFound(Exception):
    """The provider has no key with this ID (or it is another provider's)."""


class KeyProvider(Protocol):
    name: str

    def create_key(self, name: str, kind: int) -> WrappingKey: ...

    def get_key(self, key_id: str) -> WrappingKey:
        """Raises KeyNotFound with the reason as its message."""
        ...

    def owns(self, key_id: str) -> bool: ...
