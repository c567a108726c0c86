"""Storage limits like systemd-coredump's: total use, free space, count.

The oldest sealed dumps go first; the dump being written is never removed.
"""

import contextlib
import os

SUFFIX = ".cse"


def sealed_dumps(directory: str) -> list[tuple[float, int, str]]:
    """(mtime, size, path) of every sealed dump, oldest first."""
    out = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for e in entries:
        if e.name.endswith(SUFFIX) and e.is_file(follow_symlinks=False):
            st = e.stat(follow_symlinks=False)
            out.append((st.st_mtime, st.st_size, e.path))
    out.sort()
    return out


def free_bytes(directory: str) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def prune(directory: str, limits: dict, keep: str = "", size: int = 0) -> list:
    """Removes the oldest dumps until the limits hold counting one more dump
    of ``size`` bytes (``keep``, the one being written, which is never
    removed); returns the removed paths."""
    dumps = [d for d in sealed_dumps(directory) if d[2] != keep]
    max_count, max_use = limits.get("max_count", 0), limits.get("max_use", 0)
    keep_free = limits.get("keep_free", 0)
    removed = []
    while dumps:
        used = sum(s for _, s, _ in dumps)
        if not (
            (max_count and len(dumps) + 1 > max_count)
            or (max_use and used + size > max_use)
            or (keep_free and free_bytes(directory) < keep_free)
        ):
            break
        _, _, path = dumps.pop(0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        removed.append(path)
    return removed


def room_left(directory: str, limits: dict, written: int) -> bool:
    """False when writing ``written`` bytes broke a limit that pruning the
    others cannot fix."""
    keep_free, max_use = limits.get("keep_free", 0), limits.get("max_use", 0)
    if keep_free and free_bytes(directory) < keep_free:
        return False
    return not (max_use and written > max_use)
