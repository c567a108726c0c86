"""What the kernel tells the handler, and what /proc/PID still shows.

Only facts that are safe to store in the clear go in: no command line, no
environment, no memory maps (they may hold secrets).
"""

import os
from datetime import UTC, datetime

_LIMITS = (
    ("PID", 1, 1 << 22),
    ("UID", 0, (1 << 32) - 1),
    ("GID", 0, (1 << 32) - 1),
    ("SIGNAL", 1, 128),
    ("TIME", 0, 253402300799),
)  # up to 9999-12-31


def _number(text: str, what: str, low: int, high: int) -> int:
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ValueError(f"{what} must be a number from {low} to {high}, not {text!r}")
    return int(text)


def from_kernel(args: list[str]) -> dict:
    """``args`` are the expanded ``%P %u %g %s %t %e``."""
    if len(args) < 6:
        raise ValueError("the handler expects: PID UID GID SIGNAL TIME NAME")
    pid, uid, gid, sig, when = (
        _number(a, *limits) for a, limits in zip(args[:5], _LIMITS, strict=True)
    )
    return {
        "pid": pid,
        "uid": uid,
        "gid": gid,
        "signal": sig,
        "time": datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "name": " ".join(args[5:])[:255],
    }


def from_proc(pid: int) -> dict:
    base = f"/proc/{pid}"
    out = {}
    try:
        out["exe"] = os.readlink(f"{base}/exe")[:1024]
    except OSError:
        pass
    try:
        with open(f"{base}/cgroup") as f:
            out["cgroup"] = f.read(4096).strip().splitlines()[-1][:1024]
    except (OSError, IndexError):
        pass
    return {k: v for k, v in out.items() if v}


def hostname() -> str:
    # os.uname, not socket.gethostname: the socket module costs the
    # crashing process ~6 ms of handler start-up.
    return os.uname().nodename[:255]
