"""What every key provider offers. Providers know keys, never dumps."""

from dataclasses import dataclass
from typing import Protocol

from ..errors import KeyUnavailable
from ..wrapkey import WrappingKey

ACTIVE = "active"
# States in which a key may still open old dumps but seals nothing new.
OPEN_ONLY = ("deactivated", "compromised", "pre-active")


class KeyNotFound(KeyUnavailable):
    """The provider cannot give this key; ``reason`` says why, in a word
    scripts can match, and the message says it for people."""

    reason = "not-found"


class KeyDestroyed(KeyNotFound):
    reason = "destroyed"


class PermissionDenied(KeyNotFound):
    reason = "permission-denied"


class ProviderUnreachable(KeyNotFound):
    reason = "unreachable"


class ForeignKey(KeyNotFound):
    reason = "another-provider"


@dataclass(frozen=True)
class FetchedKey:
    key: WrappingKey
    state: str = ACTIVE

    @property
    def can_seal(self) -> bool:
        return self.state == ACTIVE


class KeyProvider(Protocol):
    name: str

    def create_key(self, name: str, kind: int) -> WrappingKey: ...

    def fetch(self, key_id: str) -> FetchedKey:
        """Raises KeyNotFound (or a subclass) with the reason."""
        ...

    def owns(self, key_id: str) -> bool: ...
