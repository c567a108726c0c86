"""Parse and write the envelope header. No cryptography here.

Parsing is strict: one byte form per header, every length bounded before it
is used, anything unexpected an error. ``parse(serialize(h)) == h`` and
``serialize(parse(b)) == b`` for every accepted ``b``.
"""

import json
import struct
from dataclasses import dataclass, field, replace

from ..errors import MalformedEnvelope, NotAnEnvelope, TruncatedEnvelope
from ..wrapkey import FINGERPRINT_LENGTH, KIND_NAMES, WRAP_AES_KW, WRAPPED_LENGTH
from . import constants as c

_PREAMBLE = struct.Struct(">8sBBBBI")
_FIXED = struct.Struct(">16sQ32sQQHBB")  # salt .. key_count
FIXED_END = c.PREAMBLE_LENGTH + _FIXED.size  # 92: where key entries start


@dataclass(frozen=True)
class KeyEntry:
    kind: int
    key_id: str
    fingerprint: bytes
    wrapped_key: bytes
    wrap_alg: int = WRAP_AES_KW


@dataclass(frozen=True)
class Header:
    segment_shift: int
    salt: bytes
    prefix_length: int
    prefix_digest: bytes
    dump_size: int
    original_size: int
    flags: int
    dump_type: int
    keys: tuple[KeyEntry, ...]
    metadata: dict = field(default_factory=dict)
    mac: bytes = b"\0" * c.MAC_LENGTH

    @property
    def segment_size(self) -> int:
        return 1 << self.segment_shift

    @property
    def truncated(self) -> bool:
        return bool(self.flags & c.FLAG_TRUNCATED)

    def with_mac(self, mac: bytes) -> "Header":
        return replace(self, mac=mac)


def encode_metadata(metadata: dict) -> bytes:
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError("metadata keys are strings")
        if value is not None and not isinstance(value, str | int):
            raise ValueError(f"metadata value for {key!r} is not a string or integer")
        if isinstance(value, bool):
            raise ValueError(f"metadata value for {key!r} is a boolean")
    return json.dumps(
        metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def serialize(h: Header) -> bytes:
    """The header's bytes, MAC included (``h.mac``, zeros before signing)."""
    out = bytearray(c.PREAMBLE_LENGTH)
    out += _FIXED.pack(
        h.salt,
        h.prefix_length,
        h.prefix_digest,
        h.dump_size,
        h.original_size,
        h.flags,
        h.dump_type,
        len(h.keys),
    )
    for k in h.keys:
        kid = k.key_id.encode("ascii")
        out += struct.pack(">BBB", k.kind, k.wrap_alg, len(kid)) + kid
        out += k.fingerprint + struct.pack(">B", len(k.wrapped_key)) + k.wrapped_key
    meta = encode_metadata(h.metadata)
    out += struct.pack(">H", len(meta)) + meta + h.mac
    _PREAMBLE.pack_into(
        out,
        0,
        c.MAGIC,
        c.VERSION,
        c.CIPHER_AES_256_GCM,
        c.COMPRESSION_ZSTD,
        h.segment_shift,
        len(out),
    )
    _check(h, len(out), len(meta))
    return bytes(out)


def _check(h: Header, length: int, meta_length: int) -> None:
    """Writer-side limits, so we never write a header we would refuse."""
    if not c.MIN_HEADER_LENGTH <= length <= c.MAX_HEADER_LENGTH:
        raise ValueError("header length out of range")
    if meta_length > c.MAX_METADATA_LENGTH:
        raise ValueError("metadata too large")
    if not 1 <= len(h.keys) <= c.MAX_KEY_ENTRIES:
        raise ValueError("a header holds 1 to 8 key entries")


def parse_preamble(data: bytes) -> tuple[int, int]:
    """Checks the first 16 bytes; returns (segment_shift, header_length)."""
    if len(data) < len(c.MAGIC) or data[: len(c.MAGIC)] != c.MAGIC:
        raise NotAnEnvelope("not a coreseal envelope")
    if len(data) < c.PREAMBLE_LENGTH:
        raise TruncatedEnvelope("truncated header")
    _, version, cipher, comp, shift, length = _PREAMBLE.unpack_from(data)
    if version != c.VERSION:
        raise MalformedEnvelope(
            f"unsupported envelope version {version}",
            hint="this coreseal reads version 1; a newer coreseal may read it",
        )
    if cipher != c.CIPHER_AES_256_GCM:
        raise MalformedEnvelope(f"unknown cipher {cipher}")
    if comp != c.COMPRESSION_ZSTD:
        raise MalformedEnvelope(f"unknown compression {comp}")
    if not c.MIN_SEGMENT_SHIFT <= shift <= c.MAX_SEGMENT_SHIFT:
        raise MalformedEnvelope(f"segment size 2**{shift} out of range")
    if not c.MIN_HEADER_LENGTH <= length <= c.MAX_HEADER_LENGTH:
        raise MalformedEnvelope(f"header length {length} out of range")
    return shift, length


class _Reader:
    def __init__(self, data: bytes, pos: int):
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedEnvelope("header fields overrun the header length")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]


def parse(data: bytes) -> Header:
    """Parses exactly one header; ``data`` must be its ``header_length`` bytes."""
    shift, length = parse_preamble(data)
    if len(data) < length:
        raise TruncatedEnvelope("truncated header")
    if len(data) != length:
        raise ValueError("parse() takes exactly the header bytes")
    salt, plen, pdigest, dsize, osize, flags, dtype, nkeys = _FIXED.unpack_from(
        data, c.PREAMBLE_LENGTH
    )
    if plen > c.MAX_PREFIX_LENGTH:
        raise MalformedEnvelope("plain prefix length out of range")
    if dsize > c.MAX_DUMP_SIZE or osize > c.MAX_DUMP_SIZE:
        raise MalformedEnvelope("dump size out of range")
    if flags & ~c.KNOWN_FLAGS:
        raise MalformedEnvelope(f"unknown header flags {flags:#06x}")
    truncated = bool(flags & c.FLAG_TRUNCATED)
    if (dsize < osize) != truncated or dsize > osize:
        raise MalformedEnvelope("dump sizes disagree with the truncated flag")
    if dtype not in c.DUMP_TYPE_NAMES:
        raise MalformedEnvelope(f"unknown dump type {dtype}")
    if not 1 <= nkeys <= c.MAX_KEY_ENTRIES:
        raise MalformedEnvelope(f"key entry count {nkeys} out of range")
    r = _Reader(data[: length - c.MAC_LENGTH], FIXED_END)
    keys = tuple(_parse_key_entry(r) for _ in range(nkeys))
    if len({k.key_id for k in keys}) != len(keys):
        raise MalformedEnvelope("a key ID appears twice")
    (mlen,) = struct.unpack(">H", r.take(2))
    if mlen > c.MAX_METADATA_LENGTH:
        raise MalformedEnvelope("metadata too large")
    metadata = _parse_metadata(r.take(mlen))
    if r.pos != len(r.data):
        raise MalformedEnvelope("header length does not match its fields")
    return Header(
        segment_shift=shift,
        salt=salt,
        prefix_length=plen,
        prefix_digest=pdigest,
        dump_size=dsize,
        original_size=osize,
        flags=flags,
        dump_type=dtype,
        keys=keys,
        metadata=metadata,
        mac=data[length - c.MAC_LENGTH :],
    )


def _parse_key_entry(r: _Reader) -> KeyEntry:
    kind, alg, idlen = r.u8(), r.u8(), r.u8()
    if kind not in KIND_NAMES:
        raise MalformedEnvelope(f"unknown key kind {kind}")
    if alg != WRAP_AES_KW:
        raise MalformedEnvelope(f"unknown key wrap algorithm {alg}")
    if idlen == 0:
        raise MalformedEnvelope("empty key ID")
    raw_id = r.take(idlen)
    if any(not 0x21 <= b <= 0x7E for b in raw_id):
        raise MalformedEnvelope("key ID is not printable ASCII")
    fp = r.take(FINGERPRINT_LENGTH)
    wlen = r.u8()
    if wlen != WRAPPED_LENGTH:
        raise MalformedEnvelope(f"wrapped key length {wlen} is not {WRAPPED_LENGTH}")
    return KeyEntry(kind, raw_id.decode("ascii"), fp, r.take(wlen), alg)


def _parse_metadata(raw: bytes) -> dict:
    try:
        obj = json.loads(raw.decode("ascii"), parse_float=_no_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise MalformedEnvelope("metadata is not canonical JSON") from e
    if not isinstance(obj, dict):
        raise MalformedEnvelope("metadata is not a JSON object")
    try:
        canonical = encode_metadata(obj)
    except ValueError as e:
        raise MalformedEnvelope(f"metadata: {e}") from e
    if canonical != raw:
        raise MalformedEnvelope("metadata is not in canonical form")
    return obj


def _no_float(text: str):
    raise ValueError("floats are not allowed")
