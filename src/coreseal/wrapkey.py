"""Wrapping keys: the one object the envelope needs from the key layer.

The envelope never asks where a key came from; the key layer never asks what
it wraps. Both meet here.
"""

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from .secret import Secret

KIND_HOST = 1
KIND_VM = 2
KIND_INCIDENT = 3
KIND_NAMES = {KIND_HOST: "host", KIND_VM: "vm", KIND_INCIDENT: "incident"}
KIND_BY_NAME = {v: k for k, v in KIND_NAMES.items()}

WRAP_AES_KW = 1
WRAPPED_LENGTH = 40
KEY_LENGTH = 32
FINGERPRINT_LENGTH = 16


def fingerprint(key: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=FINGERPRINT_LENGTH,
        salt=None,
        info=b"coreseal v1 fingerprint",
    ).derive(key)


def valid_key_id(key_id: str) -> bool:
    return 1 <= len(key_id) <= 255 and all(0x21 <= ord(c) <= 0x7E for c in key_id)


@dataclass(frozen=True, repr=False)
class WrappingKey:
    key_id: str
    kind: int
    secret: Secret

    def __post_init__(self):
        if not valid_key_id(self.key_id):
            raise ValueError("a key ID is 1 to 255 printable ASCII characters")
        if self.kind not in KIND_NAMES:
            raise ValueError(f"unknown key kind {self.kind}")
        if len(self.secret) != KEY_LENGTH:
            raise ValueError("a wrapping key is 32 bytes")

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    @property
    def fingerprint(self) -> bytes:
        return fingerprint(self.secret.reveal())

    def wrap(self, data_key: Secret) -> bytes:
        return aes_key_wrap(self.secret.reveal(), data_key.reveal())

    def unwrap(self, wrapped: bytes) -> Secret:
        """Raises InvalidUnwrap when the wrapped bytes were not made by this key."""
        return Secret(aes_key_unwrap(self.secret.reveal(), wrapped))

    def __repr__(self) -> str:
        return f"WrappingKey({self.key_id!r}, {self.kind_name}, <redacted>)"


__all__ = ["InvalidUnwrap", "WrappingKey", "fingerprint", "valid_key_id"]
