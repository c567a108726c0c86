"""The key cache: the host's copies of the wrapping keys it may use.

Memory-only (the kernel keyring) where the kernel allows, else a root-only
directory. A reboot empties the keyring; ``forget`` does the same on purpose.
Capture reads only from here, never from a provider.
"""

import contextlib
import hashlib
import os
from dataclasses import dataclass

from ..fsutil import private_dir, write_private
from ..paths import Paths
from ..secret import Secret
from ..wrapkey import KEY_LENGTH, KIND_NAMES, WrappingKey, valid_key_id

# payload: version (1) || flags (1) || kind (1) || key (32) || key ID (ASCII)
_VERSION = 1
FLAG_OPEN_ONLY = 0x01  # revoked or deactivated: opens old dumps, seals nothing
_HEAD = 3
_MIN_PAYLOAD = _HEAD + KEY_LENGTH + 1


@dataclass(frozen=True)
class CachedKey:
    key: WrappingKey
    can_seal: bool = True


def _encode(key: WrappingKey, can_seal: bool) -> bytes:
    flags = 0 if can_seal else FLAG_OPEN_ONLY
    return (
        bytes([_VERSION, flags, key.kind])
        + key.secret.reveal()
        + key.key_id.encode("ascii")
    )


def _decode(payload: bytes) -> CachedKey | None:
    if len(payload) < _MIN_PAYLOAD or payload[0] != _VERSION:
        return None
    flags, kind = payload[1], payload[2]
    if kind not in KIND_NAMES or flags & ~FLAG_OPEN_ONLY:
        return None
    key_id = payload[_HEAD + KEY_LENGTH :].decode("ascii", errors="replace")
    if not valid_key_id(key_id):
        return None
    key = WrappingKey(key_id, kind, Secret(payload[_HEAD : _HEAD + KEY_LENGTH]))
    return CachedKey(key, not flags & FLAG_OPEN_ONLY)


class _Cache:
    """What both backends share: entries by key ID, keys for opening."""

    def get(self, key_id: str) -> WrappingKey | None:
        """The key for opening dumps, whatever its state."""
        entry = self.entry(key_id)
        return entry.key if entry else None

    def list(self) -> list[WrappingKey]:
        return [e.key for e in self.entries()]


class KeyringCache(_Cache):
    backend = "keyring"

    def __init__(self, paths: Paths, keyring=None):
        from .keyring import Keyring

        self._kr = keyring or Keyring()
        self._prefix = f"coreseal:{paths.tag}:"

    def put(self, key: WrappingKey, can_seal: bool = True) -> None:
        # add_key replaces the payload of an existing key of that description.
        self._kr.add(self._prefix + key.key_id, _encode(key, can_seal))

    def entry(self, key_id: str) -> CachedKey | None:
        serial = self._kr.search(self._prefix + key_id)
        if serial is None:
            return None
        e = _decode(self._kr.read(serial))
        return e if e and e.key.key_id == key_id else None

    def _ours(self) -> list[tuple[int, str]]:
        out = []
        for serial in self._kr.members():
            try:
                desc = self._kr.describe(serial).split(";", 4)[-1]
            except OSError:
                continue
            if desc.startswith(self._prefix):
                out.append((serial, desc[len(self._prefix) :]))
        return out

    def entries(self) -> list[CachedKey]:
        found = [self.entry(kid) for _, kid in self._ours()]
        return [e for e in found if e]

    def forget(self) -> int:
        ours = self._ours()
        for serial, _ in ours:
            with contextlib.suppress(OSError):
                self._kr.unlink(serial)
        return len(ours)


class FileCache(_Cache):
    backend = "file"

    def __init__(self, paths: Paths):
        self._dir = paths.key_cache_dir

    def _path(self, key_id: str) -> str:
        name = hashlib.sha256(key_id.encode()).hexdigest()[:32]
        return os.path.join(self._dir, name + ".key")

    def put(self, key: WrappingKey, can_seal: bool = True) -> None:
        private_dir(self._dir)
        write_private(self._path(key.key_id), _encode(key, can_seal))

    def entry(self, key_id: str) -> CachedKey | None:
        try:
            with open(self._path(key_id), "rb") as f:
                e = _decode(f.read(4096))
        except FileNotFoundError:
            return None
        return e if e and e.key.key_id == key_id else None

    def _files(self) -> list[str]:
        try:
            names = os.listdir(self._dir)
        except FileNotFoundError:
            return []
        return [os.path.join(self._dir, n) for n in names if n.endswith(".key")]

    def entries(self) -> list[CachedKey]:
        found = []
        for path in self._files():
            with open(path, "rb") as f:
                e = _decode(f.read(4096))
            if e:
                found.append(e)
        return found

    def forget(self) -> int:
        files = self._files()
        for path in files:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return len(files)


def keyring_works() -> bool:
    try:
        from .keyring import Keyring

        kr = Keyring()
        probe = f"coreseal:probe:{os.getpid()}"
        serial = kr.add(probe, b"probe")
        kr.unlink(serial)
        return True
    except OSError:
        return False


def open_cache(paths: Paths, backend: str = "auto"):
    """``backend`` is 'keyring', 'file' or 'auto' (the keyring when the
    kernel lets us use it)."""
    if backend == "file":
        return FileCache(paths)
    if backend == "keyring":
        return KeyringCache(paths)
    if backend != "auto":
        raise ValueError(f"unknown key cache backend {backend!r}")
    return KeyringCache(paths) if keyring_works() else FileCache(paths)
