"""Sealing edge cases: sizes around the segment size, limits on boundaries."""

import io
import os

import pytest

from coreseal.envelope.extract import extract_stream, open_envelope
from coreseal.envelope.seal import DumpTooLarge, seal_stream
from coreseal.secret import Secret
from coreseal.wrapkey import KIND_HOST, WrappingKey

SEG = 1 << 16
KEY = WrappingKey("coreseal:native/t/host", KIND_HOST, Secret(os.urandom(32)))


class Pipe(io.RawIOBase):
    """Hands out data in small, uneven reads, as a kernel pipe does."""

    def __init__(self, data: bytes):
        self._data, self._pos, self._n = data, 0, 0

    def readable(self):
        return True

    def readinto(self, b):
        self._n += 1
        step = min(len(b), 4093 + (self._n % 7) * 1000, len(self._data) - self._pos)
        b[:step] = self._data[self._pos : self._pos + step]
        self._pos += step
        return step


def roundtrip(data: bytes, tmp_path, **kw):
    sealed = io.BytesIO()
    result = seal_stream(Pipe(data), sealed, [KEY], segment_shift=16, **kw)
    sealed.seek(0)
    u = open_envelope(sealed, 0, {KEY.key_id: KEY}.get)
    with open(tmp_path / "out", "w+b") as out:
        extract_stream(sealed, u, 0, out, sparse=True)
        out.seek(0)
        return result, out.read()


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 17])
def test_sizes_through_a_pipe(size, tmp_path):
    data = os.urandom(size // 2) + bytes(size - size // 2)
    result, back = roundtrip(data, tmp_path)
    assert back == data and result.dump_size == size and not result.truncated


@pytest.mark.parametrize("limit", [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG])
def test_truncation_at_and_around_boundaries(limit, tmp_path):
    data = os.urandom(3 * SEG + 5)
    result, back = roundtrip(data, tmp_path, max_size=limit)
    assert back == data[:limit]
    assert result.truncated and result.original_size == len(data)
    assert result.header.truncated


@pytest.mark.parametrize("size", [2 * SEG, 2 * SEG + 1])
def test_drop_when_too_large(size, tmp_path):
    with pytest.raises(DumpTooLarge):
        roundtrip(os.urandom(size), tmp_path, max_size=2 * SEG - 1, on_oversize="drop")
    result, _ = roundtrip(
        os.urandom(2 * SEG), tmp_path, max_size=2 * SEG, on_oversize="drop"
    )
    assert not result.truncated


def test_incompressible_segments_stay_near_their_size(tmp_path):
    data = os.urandom(4 * SEG)
    result, _ = roundtrip(data, tmp_path)
    assert result.stored_size < len(data) + 4 * (4 + 17) + 512
