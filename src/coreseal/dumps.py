"""The sealed dumps on this host, as describe sees them (no key needed)."""

import os

from .capture.storage import sealed_dumps
from .envelope.constants import COMMON_PREFIX_OFFSET, MAGIC
from .envelope.describe import describe
from .errors import CoresealError, UsageError
from .paths import Paths


def list_dumps(paths: Paths) -> list[dict]:
    out = []
    for _, size, path in sealed_dumps(paths.dumps):
        entry = {"file": os.path.basename(path), "path": path, "stored_size": size}
        try:
            with open(path, "rb") as f:
                entry["offset"] = offset = envelope_offset(f)
                entry.update(describe(f, offset))
        except (CoresealError, OSError) as e:
            entry.update({"sealed": False, "error": str(e)})
        out.append(entry)
    return out


def envelope_offset(f) -> int:
    """Where the envelope starts: at 0, or after a 4096-byte plain header
    (kernel dumps); other offsets must be given by hand."""
    for offset in (0, COMMON_PREFIX_OFFSET):
        f.seek(offset)
        if f.read(len(MAGIC)) == MAGIC:
            return offset
    return 0


def find(paths: Paths, name: str) -> str:
    """A dump by path, by file name in the dumps directory, or by pid."""
    for candidate in (name, os.path.join(paths.dumps, name)):
        if os.path.isfile(candidate):
            return candidate
    if name.isdigit():
        matches = [
            d["path"]
            for d in list_dumps(paths)
            if d.get("metadata", {}).get("pid") == int(name)
        ]
        if matches:
            return matches[-1]
    raise UsageError(f"no dump named {name}", hint="see 'coreseal list'")
