"""Writing a bundle's archive without copying its dumps.

A member's bytes are pieces: bytes in memory, or ranges of files kept open
for the whole collect (so a dump pruned or replaced meanwhile still reads
as it was). A rewrapped dump is its original bytes with only the header
swapped. The gzip stream is a series of gzip members, one per archive
member, so sealed dumps, which do not compress, are stored at level 0 and
text at level 6; gzip readers (tar xzf, Python) read such a stream as one.
"""

import hashlib
import io
import os
import zlib

TEXT_LEVEL = 6
SEALED_LEVEL = 0


class Pieces:
    def __init__(self, parts: list):
        """``parts``: bytes, or (fd, offset, length) ranges."""
        self.parts = parts
        self.size = sum(len(p) if isinstance(p, bytes) else p[2] for p in parts)

    def reader(self) -> io.BufferedReader:
        # Buffered: tarfile wants every read() filled to the size it asked.
        return io.BufferedReader(_PieceReader(self.parts), 1 << 20)

    def sha256(self) -> str:
        h = hashlib.sha256()
        r = self.reader()
        for chunk in iter(lambda: r.read(1 << 20), b""):
            h.update(chunk)
        return h.hexdigest()


class _PieceReader(io.RawIOBase):
    def __init__(self, parts):
        self._parts = list(parts)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                n = min(len(b), len(part) - self._pos)
                b[:n] = part[self._pos : self._pos + n]
                length = len(part)
            else:
                fd, start, length = part
                want = min(len(b), length - self._pos)
                data = os.pread(fd, want, start + self._pos) if want else b""
                if want and not data:
                    raise OSError("a dump shrank while the bundle was written")
                n = len(data)
                b[:n] = data
            self._pos += n
            if self._pos >= length:
                self._parts.pop(0)
                self._pos = 0
            if n:
                return n
        return 0


class MultiGzip(io.RawIOBase):
    """A writable gzip stream whose level can change between members."""

    def __init__(self, out, level: int = TEXT_LEVEL):
        self._out = out
        self._z = None
        self.level(level)

    def level(self, level: int) -> None:
        if self._z is not None:
            self._out.write(self._z.flush())
        # wbits 31: a complete gzip member, header and CRC trailer included.
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self._out.write(self._z.compress(b))
        return len(b)

    def close(self) -> None:
        if self._z is not None:
            self._out.write(self._z.flush())
            self._z = None
        super().close()
