"""The multi-threaded pipeline gives the same bytes as one thread, keeps
segment order whatever order workers finish in, and stops cleanly when a
worker fails."""

import hashlib
import io
import os
import random
import struct
import threading
import time

import pytest

from coreseal.envelope import stream
from coreseal.envelope.extract import extract_stream, open_envelope
from coreseal.envelope.seal import seal_stream
from coreseal.errors import IntegrityError
from coreseal.secret import Secret
from coreseal.wrapkey import KIND_HOST, WrappingKey

KEY = WrappingKey("coreseal:native/t/host", KIND_HOST, Secret(b"\x07" * 32))
DATA = os.urandom(3 << 16) + bytes(5 << 16) + b"text line\n" * 40000 + os.urandom(12345)


class Counter:
    """Deterministic 'random' bytes, so two seals can be compared byte for byte."""

    def __init__(self):
        self.n = 0

    def __call__(self, k):
        out = b""
        while len(out) < k:
            out += hashlib.sha256(struct.pack(">Q", self.n)).digest()
            self.n += 1
        return out[:k]


def seal(threads, data=DATA):
    out = io.BytesIO()
    seal_stream(
        io.BytesIO(data), out, [KEY], segment_shift=16, threads=threads, rng=Counter()
    )
    return out.getvalue()


def workers_alive():
    return [t for t in threading.enumerate() if t.name.startswith("coreseal-worker")]


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_same_bytes_with_one_or_many_workers(threads):
    assert seal(threads) == seal(1)
    assert workers_alive() == []


def test_order_survives_workers_finishing_out_of_order(monkeypatch):
    expected = seal(1)
    real = stream.SegmentSealer.seal_into
    rnd = random.Random(7)

    def slow(self, index, *args):
        time.sleep(rnd.random() * 0.01 * (index % 3))
        return real(self, index, *args)

    monkeypatch.setattr(stream.SegmentSealer, "seal_into", slow)
    assert seal(4) == expected


def test_a_failing_worker_stops_the_pipeline(monkeypatch):
    real = stream.SegmentSealer.seal_into

    def failing(self, index, *args):
        if index == 5:
            raise OSError(28, "No space left on device")
        return real(self, index, *args)

    monkeypatch.setattr(stream.SegmentSealer, "seal_into", failing)
    with pytest.raises(OSError, match="No space"):
        seal(3)
    assert workers_alive() == []


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_parallel_open_gives_the_same_plaintext(threads, tmp_path):
    blob = seal(2)
    f = io.BytesIO(blob)
    u = open_envelope(f, 0, {KEY.key_id: KEY}.get)
    with open(tmp_path / "out", "w+b") as out:
        extract_stream(f, u, 0, out, sparse=True, threads=threads)
        out.seek(0)
        assert out.read() == DATA
    assert workers_alive() == []


def test_parallel_open_reports_the_first_bad_segment():
    blob = bytearray(seal(1))
    # Damage segment 1, then cut the file so a later read hits the end:
    # the reader runs ahead, but segment 1's failure is the one reported.
    (hlen,) = struct.unpack_from(">I", blob, 12)
    (first,) = struct.unpack_from(">I", blob, hlen)
    blob[hlen + 4 + first + 10] ^= 1
    cut = bytes(blob[: len(blob) - 100])
    f = io.BytesIO(cut)
    u = open_envelope(f, 0, {KEY.key_id: KEY}.get)
    with pytest.raises(IntegrityError, match="segment 1"):
        extract_stream(f, u, 0, io.BytesIO(), sparse=False, threads=4)
    assert workers_alive() == []
