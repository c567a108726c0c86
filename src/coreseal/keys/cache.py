"""The key cache: the host's copies of the wrapping keys it may use.

Memory-only (the kernel keyring) where the kernel allows, else a root-only
directory. A reboot empties the keyring; ``forget`` does the same on purpose.
Capture reads only from here, never from a provider.
"""

import contextlib
import hashlib
import os

from ..fsutil import private_dir, write_private
from ..paths import Paths
from ..secret import Secret
from ..wrapkey import KEY_LENGTH, KIND_NAMES, WrappingKey, valid_key_id

# payload: kind (1 byte) || key (32 bytes) || key ID (ASCII)
_MIN_PAYLOAD = 1 + KEY_LENGTH + 1


def _encode(key: WrappingKey) -> bytes:
    return bytes([key.kind]) + key.secret.reveal() + key.key_id.encode("ascii")


def _decode(payload: bytes) -> WrappingKey | None:
    if len(payload) < _MIN_PAYLOAD or payload[0] not in KIND_NAMES:
        return None
    key_id = payload[1 + KEY_LENGTH :].decode("ascii", errors="replace")
    if not valid_key_id(key_id):
        return None
    return WrappingKey(key_id, payload[0], Secret(payload[1 : 1 + KEY_LENGTH]))


class KeyringCache:
    backend = "keyring"

    def __init__(self, paths: Paths, keyring=None):
        from .keyring import Keyring

        self._kr = keyring or Keyring()
        self._prefix = f"coreseal:{paths.tag}:"

    def put(self, key: WrappingKey) -> None:
        # add_key replaces the payload of an existing key of that description.
        self._kr.add(self._prefix + key.key_id, _encode(key))

    def get(self, key_id: str) -> WrappingKey | None:
        serial = self._kr.search(self._prefix + key_id)
        if serial is None:
            return None
        key = _decode(self._kr.read(serial))
        return key if key and key.key_id == key_id else None

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

    def list(self) -> list[WrappingKey]:
        keys = [self.get(kid) for _, kid in self._ours()]
        return [k for k in keys if k]

    def forget(self) -> int:
        ours = self._ours()
        for serial, _ in ours:
            with contextlib.suppress(OSError):
                self._kr.unlink(serial)
        return len(ours)


class FileCache:
    backend = "file"

    def __init__(self, paths: Paths):
        self._dir = paths.key_cache_dir

    def _path(self, key_id: str) -> str:
        name = hashlib.sha256(key_id.encode()).hexdigest()[:32]
        return os.path.join(self._dir, name + ".key")

    def put(self, key: WrappingKey) -> None:
        private_dir(self._dir)
        write_private(self._path(key.key_id), _encode(key))

    def get(self, key_id: str) -> WrappingKey | None:
        try:
            with open(self._path(key_id), "rb") as f:
                key = _decode(f.read(4096))
        except FileNotFoundError:
            return None
        return key if key and key.key_id == key_id else None

    def _files(self) -> list[str]:
        try:
            names = os.listdir(self._dir)
        except FileNotFoundError:
            return []
        return [os.path.join(self._dir, n) for n in names if n.endswith(".key")]

    def list(self) -> list[WrappingKey]:
        keys = []
        for path in self._files():
            with open(path, "rb") as f:
                key = _decode(f.read(4096))
            if key:
                keys.append(key)
        return keys

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
