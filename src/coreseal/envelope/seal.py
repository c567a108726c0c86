"""Sealing: a stream in, an envelope out, in constant memory."""

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..errors import UsageError
from ..secret import Secret
from ..wrapkey import WrappingKey
from . import constants as c
from . import format as fmt
from .kdf import header_mac, payload_key
from .pipeline import DumpTooLarge, SegmentReader, default_threads, seal_segments
from .stream import read_full

__all__ = ["DumpTooLarge", "SealResult", "seal_stream", "sign"]


@dataclass(frozen=True)
class SealResult:
    header: fmt.Header
    dump_size: int
    original_size: int
    truncated: bool
    stored_size: int


def make_key_entries(
    data_key: Secret, keys: Sequence[WrappingKey]
) -> tuple[fmt.KeyEntry, ...]:
    return tuple(
        fmt.KeyEntry(k.kind, k.key_id, k.fingerprint, k.wrap(data_key)) for k in keys
    )


def sign(header: fmt.Header, data_key: Secret) -> bytes:
    """Serializes ``header`` with its MAC computed under ``data_key``."""
    unsigned = fmt.serialize(header.with_mac(b"\0" * c.MAC_LENGTH))
    mac = header_mac(data_key, header.salt, unsigned[: -c.MAC_LENGTH])
    return unsigned[: -c.MAC_LENGTH] + mac


def seal_stream(
    src,
    dst,
    keys: Sequence[WrappingKey],
    *,
    dump_type: int = c.DUMP_FILE,
    metadata: dict | None = None,
    prefix_length: int = 0,
    segment_shift: int = c.DEFAULT_SEGMENT_SHIFT,
    max_size: int | None = None,
    on_oversize: str = "truncate",
    level: int = 3,
    rng: Callable[[int], bytes] = os.urandom,
    progress: Callable[[int], None] | None = None,
    threads: int = 0,
    original_size: int | None = None,
) -> SealResult:
    """Reads ``src`` (a file or pipe) to its end and writes an envelope to
    ``dst``, which must be seekable: the sizes are filled in at the end.

    The first ``prefix_length`` bytes of ``src`` are copied in the clear and
    authenticated. Beyond ``max_size`` plaintext bytes the dump is stored
    truncated (the rest is read and counted, not kept) or, with
    ``on_oversize='drop'``, ``DumpTooLarge`` is raised. ``threads`` 0 means
    one worker per available core. ``original_size`` carries a truncated
    dump's first size over when it is sealed again.
    """
    if not keys:
        raise ValueError("sealing needs at least one wrapping key")
    segment_size = 1 << segment_shift
    start = dst.tell()
    prefix_digest = _copy_prefix(src, dst, prefix_length)
    data_key = Secret(rng(32))
    salt = rng(c.SALT_LENGTH)
    header = fmt.Header(
        segment_shift=segment_shift,
        salt=salt,
        prefix_length=prefix_length,
        prefix_digest=prefix_digest,
        dump_size=0,
        original_size=0,
        flags=0,
        dump_type=dump_type,
        keys=make_key_entries(data_key, keys),
        metadata=dict(metadata or {}),
    )
    header_pos = dst.tell()
    dst.write(fmt.serialize(header))  # placeholder, rewritten below

    limit = c.MAX_DUMP_SIZE if max_size is None else max_size
    reader = SegmentReader(src, segment_size, limit, on_oversize)
    seal_segments(
        reader,
        dst,
        payload_key(data_key, salt),
        level,
        threads or default_threads(),
        progress,
    )
    kept, offered = reader.kept, reader.offered
    if original_size is not None:
        offered = max(offered, original_size)

    truncated = kept < offered
    flags = c.FLAG_TRUNCATED if truncated else 0
    final = replace(header, dump_size=kept, original_size=offered, flags=flags)
    signed = sign(final, data_key)
    end = dst.tell()
    dst.seek(header_pos)
    dst.write(signed)
    dst.seek(end)
    return SealResult(fmt.parse(signed), kept, offered, truncated, end - start)


def _copy_prefix(src, dst, n: int) -> bytes:
    """Copies the plain prefix in bounded chunks; returns its digest."""
    if n < 0 or n > c.MAX_PREFIX_LENGTH:
        raise UsageError("offset out of range")
    digest = hashlib.sha256()
    buf = bytearray(min(n, 1 << 20))
    left = n
    while left:
        view = memoryview(buf)[: min(left, len(buf))]
        got = read_full(src, view)
        digest.update(view[:got])
        dst.write(view[:got])
        left -= got
        if got < len(view):
            raise UsageError(
                f"offset {n} is past the end of the input ({n - left} bytes)"
            )
    return digest.digest()
