"""What a file is, without any key."""

from ..errors import CoresealError, NotAnEnvelope
from ..wrapkey import KIND_NAMES
from . import constants as c
from . import format as fmt
from .opener import read_header


def describe(f, offset: int = 0) -> dict:
    """A plain dict for people and JSON; raises NotAnEnvelope with a hint
    when the envelope sits at the common 4096-byte offset instead."""
    header, raw = read_header_hinting(f, offset)
    return header_info(header, len(raw))


def read_header_hinting(f, offset: int):
    """read_header, saying so when the envelope is at 4096 instead."""
    try:
        return read_header(f, offset)
    except NotAnEnvelope as e:
        if offset != c.COMMON_PREFIX_OFFSET and _envelope_at(f, c.COMMON_PREFIX_OFFSET):
            raise NotAnEnvelope(
                f"no envelope at offset {offset}, but there is one at "
                f"{c.COMMON_PREFIX_OFFSET}",
                hint=f"use --offset {c.COMMON_PREFIX_OFFSET}",
            ) from None
        raise e


def header_info(header: fmt.Header, header_length: int) -> dict:
    return {
        "sealed": True,
        "format_version": c.VERSION,
        "cipher": "AES-256-GCM",
        "compression": "zstd",
        "segment_size": header.segment_size,
        "header_length": header_length,
        "plain_prefix_length": header.prefix_length,
        "dump_type": c.DUMP_TYPE_NAMES[header.dump_type],
        "dump_size": header.dump_size,
        "original_size": header.original_size,
        "truncated": header.truncated,
        "keys": [
            {
                "key_id": k.key_id,
                "key_kind": KIND_NAMES[k.kind],
                "fingerprint": k.fingerprint.hex(),
            }
            for k in header.keys
        ],
        "metadata": header.metadata,
    }


def _envelope_at(f, offset: int) -> bool:
    try:
        read_header(f, offset)
    except (CoresealError, OSError):
        return False
    return True
