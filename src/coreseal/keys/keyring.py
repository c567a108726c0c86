"""The kernel keyring through the add_key and keyctl system calls.

Key bytes travel in the call's memory, never on a command line. Keys go in
root's user keyring (@u), which a core_pattern handler started by the kernel
as uid 0 can read (notes/keyring.md).
"""

import ctypes
import errno
import os
import platform

_SYSCALLS = {"x86_64": (248, 250), "aarch64": (217, 219)}
KEY_SPEC_USER_KEYRING = -4
KEYCTL_DESCRIBE = 6
KEYCTL_SETPERM = 5
KEYCTL_UNLINK = 9
KEYCTL_SEARCH = 10
KEYCTL_READ = 11
# Possessor and user: view, read, write, search, link, setattr. Others none.
PERM = 0x3F3F0000


class KeyringUnavailable(OSError):
    pass


class Keyring:
    def __init__(self):
        nums = _SYSCALLS.get(platform.machine())
        if nums is None:
            raise KeyringUnavailable(
                f"no keyring syscalls known for {platform.machine()}"
            )
        self._add, self._ctl = nums
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long

    def _call(self, *args) -> int:
        r = self._libc.syscall(*args)
        if r < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return r

    def add(self, description: str, payload: bytes) -> int:
        buf = ctypes.create_string_buffer(payload, len(payload))
        serial = self._call(
            self._add,
            b"user",
            description.encode(),
            buf,
            ctypes.c_size_t(len(payload)),
            ctypes.c_int(KEY_SPEC_USER_KEYRING),
        )
        ctypes.memset(buf, 0, len(payload))
        self._call(
            self._ctl, KEYCTL_SETPERM, ctypes.c_long(serial), ctypes.c_long(PERM)
        )
        return serial

    def search(self, description: str) -> int | None:
        try:
            return self._call(
                self._ctl,
                KEYCTL_SEARCH,
                ctypes.c_int(KEY_SPEC_USER_KEYRING),
                b"user",
                description.encode(),
                ctypes.c_long(0),
            )
        except OSError as e:
            if e.errno in (errno.ENOKEY, errno.EKEYREVOKED, errno.EKEYEXPIRED):
                return None
            raise

    def read(self, serial: int) -> bytes:
        size = 256
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._call(
                self._ctl, KEYCTL_READ, ctypes.c_long(serial), buf, ctypes.c_long(size)
            )
            if n <= size:
                data = buf.raw[:n]
                ctypes.memset(buf, 0, size)
                return data
            size = n

    def describe(self, serial: int) -> str:
        buf = ctypes.create_string_buffer(4096)
        n = self._call(
            self._ctl, KEYCTL_DESCRIBE, ctypes.c_long(serial), buf, ctypes.c_long(4096)
        )
        return buf.raw[: max(0, n - 1)].decode(errors="replace")

    def members(self) -> list[int]:
        raw = self.read(KEY_SPEC_USER_KEYRING & 0xFFFFFFFF)
        return [
            int.from_bytes(raw[i : i + 4], "little", signed=True)
            for i in range(0, len(raw), 4)
        ]

    def unlink(self, serial: int) -> None:
        self._call(
            self._ctl,
            KEYCTL_UNLINK,
            ctypes.c_long(serial),
            ctypes.c_int(KEY_SPEC_USER_KEYRING),
        )
