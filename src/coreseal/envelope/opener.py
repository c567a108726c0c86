"""Opening: find a usable key entry, verify the header, stream the payload."""

import hashlib
import hmac
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import (
    IntegrityError,
    KeyMismatch,
    KeyUnavailable,
    MalformedEnvelope,
    NotAnEnvelope,
    TruncatedEnvelope,
)
from ..secret import Secret
from ..wrapkey import InvalidUnwrap, WrappingKey
from . import constants as c
from . import format as fmt
from .kdf import header_mac, payload_key
from .pipeline import Workers
from .stream import SegmentOpener, _read_exact

KeyLookup = Callable[[str], WrappingKey | None]


@dataclass(frozen=True, repr=False)
class Unlocked:
    header: fmt.Header
    raw: bytes
    data_key: Secret
    entry: fmt.KeyEntry


def read_header(f, offset: int = 0) -> tuple[fmt.Header, bytes]:
    """Reads and parses the header at ``offset``; leaves ``f`` after it."""
    f.seek(offset)
    pre = _read_exact(f, c.PREAMBLE_LENGTH)
    if not pre:
        raise NotAnEnvelope(
            "not a coreseal envelope (empty)"
            if offset == 0
            else f"nothing at offset {offset}: past the end of the file"
        )
    _, length = fmt.parse_preamble(pre)
    rest = _read_exact(f, length - c.PREAMBLE_LENGTH)
    if len(rest) < length - c.PREAMBLE_LENGTH:
        raise TruncatedEnvelope("truncated header")
    raw = pre + rest
    return fmt.parse(raw), raw


def unlock(header: fmt.Header, raw: bytes, lookup: KeyLookup) -> Unlocked:
    mismatched = []
    for entry in header.keys:
        key = lookup(entry.key_id)
        if key is None:
            continue
        try:
            data_key = key.unwrap(entry.wrapped_key)
        except InvalidUnwrap:
            if not hmac.compare_digest(key.fingerprint, entry.fingerprint):
                mismatched.append(entry.key_id)
                continue
            raise IntegrityError(
                f"the wrapped key for {entry.key_id} failed to unwrap "
                "(corrupted or tampered)"
            ) from None
        mac = header_mac(data_key, header.salt, raw[: -c.MAC_LENGTH])
        if not hmac.compare_digest(mac, header.mac):
            raise IntegrityError("header failed authentication (corrupted or tampered)")
        return Unlocked(header, raw, data_key, entry)
    if mismatched:
        raise KeyMismatch(
            f"the key cache holds a different key under {mismatched[0]}: "
            "it is not the key that sealed this dump",
            hint="run 'coreseal keys sync' to reload the provider's key",
        )
    ids = ", ".join(e.key_id for e in header.keys)
    raise KeyUnavailable(
        f"key {ids} is not in the key cache",
        hint="run 'coreseal keys sync', or open the dump where its key is",
    )


def check_prefix(f, unlocked: Unlocked, offset: int, out=None) -> None:
    """Checks the plain prefix against the header, then copies it to ``out``
    (nothing is written before it checks out); leaves ``f`` just after the
    header, where the segments start. Both passes use bounded memory."""
    header = unlocked.header
    if header.prefix_length != offset:
        raise MalformedEnvelope(
            f"the envelope has a {header.prefix_length}-byte plain prefix, "
            f"not {offset}",
            hint=f"use --offset {header.prefix_length}",
        )
    digest = hashlib.sha256()
    for chunk in _chunks(f, offset):
        digest.update(chunk)
    if not hmac.compare_digest(digest.digest(), header.prefix_digest):
        raise IntegrityError("the plain prefix was changed (corrupted or tampered)")
    if out is not None:
        for chunk in _chunks(f, offset):
            out.write(chunk)
    f.seek(offset + len(unlocked.raw))


def _chunks(f, n: int, size: int = 1 << 20):
    f.seek(0)
    while n:
        chunk = f.read(min(n, size))
        if not chunk:
            raise TruncatedEnvelope("the plain prefix is cut short")
        n -= len(chunk)
        yield chunk


def segments(f, unlocked: Unlocked, threads: int = 1) -> Iterator[tuple[int, object]]:
    """Yields ``(encoding, data)`` per segment, in order; ``f`` must be just
    after the header. Records are read here, one after the other; with
    ``threads`` > 1 they are opened (decrypted, decompressed) on that many
    workers. Raises at the first bad record, and on trailing data."""
    h = unlocked.header
    size = h.segment_size
    count = max(1, -(-h.dump_size // size))
    key = payload_key(unlocked.data_key, h.salt)
    reader = SegmentOpener(key, size)

    records = reader.records(f)

    def jobs(copy: bool):
        for index in range(count):
            last = index == count - 1
            expected = h.dump_size - index * size if last else size
            record = records.read(index)
            yield index, bytes(record) if copy else record, last, expected

    if threads <= 1:
        # One buffer for the record, one for the plaintext, both reused:
        # the consumer is done with a segment before it asks for the next.
        for job in jobs(copy=False):
            yield reader.open_into(*job)
    else:
        pool = Workers(threads, lambda: SegmentOpener(key, size).open)
        pending: deque = deque()
        try:
            try:
                for job in jobs(copy=True):
                    pending.append(pool.submit(*job))
                    while len(pending) > 2 * threads:
                        yield pending.popleft().result()
            except (TruncatedEnvelope, IntegrityError):
                # The reader runs ahead of the workers: an earlier segment's
                # failure is the one to report, as a single thread would.
                while pending:
                    yield pending.popleft().result()
                raise
            while pending:
                yield pending.popleft().result()
        finally:
            pool.close()
    records.done()
    if f.read(1):
        raise IntegrityError(
            "trailing data after the last segment (appended or tampered)"
        )
