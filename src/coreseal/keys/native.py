"""The built-in key provider: keys derived from one secret kept on the host.

The provider's state (its ID, its secret and the names of the keys it made)
is one root-only file. Keys are derived with HKDF from the secret and the
key's name, so a restored backup gives back every key it ever made, and a
name it never made is "not found" rather than silently derived.
"""

import json
import os
import secrets
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import CoresealError, NotSetUp
from ..fsutil import write_private
from ..paths import Paths
from ..secret import Secret
from ..wrapkey import KIND_BY_NAME, KIND_NAMES, WrappingKey
from .provider import FetchedKey, ForeignKey, KeyNotFound

PREFIX = "coreseal:native/"
STATE_VERSION = 1


def state_path(paths: Paths) -> str:
    return os.path.join(paths.provider, "native.json")


class NativeProvider:
    name = "native"

    def __init__(self, provider_id: str, secret: Secret, keys: dict):
        self.provider_id = provider_id
        self._secret = secret
        self._keys = keys

    def __repr__(self) -> str:
        return f"NativeProvider({self.provider_id!r}, <redacted>)"

    # --- state -----------------------------------------------------------
    @classmethod
    def create(cls) -> "NativeProvider":
        return cls(secrets.token_hex(4), Secret(os.urandom(32)), {})

    @classmethod
    def load(cls, paths: Paths) -> "NativeProvider":
        try:
            with open(state_path(paths), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotSetUp(
                "the native key provider has no secret on this host",
                hint="run 'coreseal setup', or 'coreseal provider restore'",
            ) from None
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "NativeProvider":
        try:
            obj = json.loads(raw)
            if obj["version"] != STATE_VERSION:
                raise ValueError("unknown version")
            secret = Secret(bytes.fromhex(obj["secret"]))
            if len(secret) != 32:
                raise ValueError("bad secret length")
            return cls(str(obj["provider_id"]), secret, dict(obj["keys"]))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise CoresealError("the native provider's state is damaged") from None

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "provider_id": self.provider_id,
                "secret": self._secret.reveal().hex(),
                "keys": self._keys,
            },
            sort_keys=True,
        ).encode()

    def save(self, paths: Paths) -> None:
        write_private(state_path(paths), self.to_bytes())

    # --- keys ------------------------------------------------------------
    def key_id(self, name: str) -> str:
        return f"{PREFIX}{self.provider_id}/{name}"

    def owns(self, key_id: str) -> bool:
        return key_id.startswith(f"{PREFIX}{self.provider_id}/")

    def _derive(self, name: str) -> Secret:
        return Secret(
            HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=b"coreseal native key v1 " + name.encode(),
            ).derive(self._secret.reveal())
        )

    def create_key(self, name: str, kind: int) -> WrappingKey:
        """Records the key's name; the caller saves the provider state."""
        self._keys[name] = {
            "kind": KIND_NAMES[kind],
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return WrappingKey(self.key_id(name), kind, self._derive(name))

    def fetch(self, key_id: str) -> FetchedKey:
        return FetchedKey(self.get_key(key_id))

    def get_key(self, key_id: str) -> WrappingKey:
        if not key_id.startswith(PREFIX):
            raise ForeignKey("the key belongs to another provider")
        if not self.owns(key_id):
            raise ForeignKey("the key belongs to another native provider")
        name = key_id[len(self.key_id("")) :]
        info = self._keys.get(name)
        if info is None:
            raise KeyNotFound("not found on the provider")
        return WrappingKey(key_id, KIND_BY_NAME[info["kind"]], self._derive(name))

    def key_names(self) -> list[str]:
        return sorted(self._keys)

    def next_name(self, stem: str) -> str:
        """``stem-N`` with the first N not used yet (for rotation)."""
        n = 1
        while f"{stem}-{n}" in self._keys:
            n += 1
        return f"{stem}-{n}"
