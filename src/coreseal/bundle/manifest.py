"""The manifest: what a bundle holds, each member's size and SHA-256."""

import hashlib
import json
import os
import socket
import sys
from datetime import UTC, datetime

from .. import __version__
from . import FORMAT, VERSION


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def member(path: str, source: str, kind: str, **extra) -> dict:
    return {
        "path": path,
        "type": kind,
        "size": os.path.getsize(source),
        "sha256": sha256_file(source),
        **extra,
    }


def build(members: list[dict], protected: bool, host: str | None = None) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "tool": f"coreseal {__version__}",
        "host": host or socket.gethostname(),
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # coreseal takes no secret on its command line, so argv is safe here.
        "command": [os.path.basename(sys.argv[0]), *sys.argv[1:]],
        "password_protected": protected,
        "members": members,
    }


def encode(manifest: dict) -> bytes:
    return json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n"
