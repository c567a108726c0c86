"""The header parser: strict, one byte form, bounded, never a stray error."""

import io
import os
import random
import struct

import pytest

from coreseal.envelope import constants as c
from coreseal.envelope import format as fmt
from coreseal.envelope.opener import read_header
from coreseal.envelope.seal import seal_stream
from coreseal.errors import CoresealError, MalformedEnvelope, NotAnEnvelope
from coreseal.secret import Secret
from coreseal.wrapkey import KIND_HOST, KIND_VM, WrappingKey


def key(i=0, kind=KIND_HOST):
    return WrappingKey(f"coreseal:native/t/k{i}", kind, Secret(bytes([i]) * 32))


def sealed(data=b"x" * 1000, keys=None, **kw):
    out = io.BytesIO()
    seal_stream(io.BytesIO(data), out, keys or [key()], segment_shift=16, **kw)
    return out.getvalue()


def header_bytes(blob):
    (length,) = struct.unpack_from(">I", blob, 12)
    return blob[:length]


def test_parse_serialize_roundtrip():
    blob = sealed(keys=[key(1), key(2, KIND_VM)], metadata={"name": "é", "pid": 7})
    raw = header_bytes(blob)
    h = fmt.parse(raw)
    assert fmt.serialize(h) == raw
    assert [k.key_id for k in h.keys] == [
        "coreseal:native/t/k1",
        "coreseal:native/t/k2",
    ]
    assert h.metadata == {"name": "é", "pid": 7}


def test_parse_write_fuzz_never_escapes():
    """Random corruption of a header either parses to something that writes
    back to the same bytes, or raises a CoresealError: nothing else."""
    rnd = random.Random(1234)
    raw = header_bytes(sealed(metadata={"name": "fuzz", "pid": 1}))
    accepted = 0
    for _ in range(3000):
        b = bytearray(raw)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        try:
            h = fmt.parse(bytes(b))
        except CoresealError:
            continue
        except ValueError:
            # only when the length field itself changed
            assert struct.unpack_from(">I", b, 12)[0] != len(b)
            continue
        accepted += 1
        assert fmt.serialize(h) == bytes(b)
    assert accepted > 0  # bit flips in salt, digest, MAC still parse


def with_metadata(raw: bytes, meta: bytes) -> bytes:
    """The header with its metadata bytes replaced and its lengths fixed."""
    h = fmt.parse(raw)
    old = fmt.encode_metadata(h.metadata)
    start = len(raw) - c.MAC_LENGTH - len(old)
    out = bytearray(raw[: start - 2] + struct.pack(">H", len(meta)) + meta + h.mac)
    struct.pack_into(">I", out, 12, len(out))
    return bytes(out)


@pytest.mark.parametrize(
    "meta",
    [
        b'{ "a":1}',
        b'{"b":1,"a":2}',
        b'{"a":1.0}',
        b"[]",
        b'{"a":"\xc3\xa9"}',
        b'{"a":true}',
        b'{"a":{}}',
        b"",
        b'{"a":1}x',
    ],
)
def test_non_canonical_metadata_refused(meta):
    raw = header_bytes(sealed(metadata={"a": 1}))
    assert fmt.parse(with_metadata(raw, b'{"a":1}'))  # the helper is sound
    with pytest.raises(MalformedEnvelope, match="metadata"):
        fmt.parse(with_metadata(raw, meta))


@pytest.mark.parametrize(
    "offset,value,message",
    [
        (8, 9, "unsupported envelope version"),
        (9, 2, "unknown cipher"),
        (10, 7, "unknown compression"),
        (11, 40, "segment size"),
        (91, 0, "key entry count"),
        (90, 9, "unknown dump type"),
    ],
)
def test_fields_out_of_range(offset, value, message):
    raw = bytearray(header_bytes(sealed()))
    raw[offset] = value
    with pytest.raises(MalformedEnvelope, match=message):
        fmt.parse(bytes(raw))


def test_lengths_bounded_before_reading():
    raw = bytearray(header_bytes(sealed()))
    struct.pack_into(">I", raw, 12, c.MAX_HEADER_LENGTH + 1)
    with pytest.raises(MalformedEnvelope, match="header length"):
        read_header(io.BytesIO(bytes(raw)))
    with pytest.raises(NotAnEnvelope):
        read_header(io.BytesIO(b"\x7fELF" + os.urandom(100)))


def test_writer_refuses_what_the_reader_would():
    with pytest.raises(ValueError):
        sealed(keys=[key(i) for i in range(9)])
    with pytest.raises(ValueError):
        sealed(metadata={"big": "x" * 20000})
    with pytest.raises(ValueError):
        sealed(metadata={"f": 1.5})
