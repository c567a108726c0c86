"""``bundle reconstruct`` and ``bundle clean``: after support replaced
sealed dumps with decrypted ones, pack the directory again, or remove what
must not travel further."""

import io
import os
import tarfile

from ..envelope.constants import MAGIC
from ..errors import CoresealError, UnsafeArchive
from ..fsutil import AtomicFile
from . import KEY_FILE, MANIFEST
from .manifest import build, encode, member


def _is_sealed(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096 + len(MAGIC))
    return head.startswith(MAGIC) or head[4096:].startswith(MAGIC)


def _walk(directory: str):
    """(archive path, full path) of every plain file; links are never
    followed, and anything but files and directories is refused."""
    out = []
    for d, dirs, files in os.walk(directory, followlinks=False):
        for n in sorted(dirs):
            if os.path.islink(os.path.join(d, n)):
                raise UnsafeArchive(f"{os.path.join(d, n)} is a symbolic link")
        for n in sorted(files):
            full = os.path.join(d, n)
            rel = os.path.relpath(full, directory).replace(os.sep, "/")
            if os.path.islink(full) or not os.path.isfile(full):
                raise UnsafeArchive(f"{full} is not a plain file")
            if rel != MANIFEST:
                out.append((rel, full))
    return sorted(out)


def reconstruct(directory: str, out: str) -> dict:
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory) or os.path.islink(directory):
        raise CoresealError(f"{directory} is not a directory")
    if os.path.lexists(out):
        raise CoresealError(f"{out} exists")
    files = _walk(directory)
    members, decrypted = [], []
    for rel, full in files:
        kind = (
            "dump"
            if rel.startswith("dumps/")
            else "incident-key-file"
            if rel == KEY_FILE
            else "file"
        )
        sealed = kind == "dump" and _is_sealed(full)
        if kind == "dump" and not sealed:
            decrypted.append(rel)
        members.append(
            member(
                rel, full, kind, **({"decrypted": not sealed} if kind == "dump" else {})
            )
        )
    manifest = build(members, any(m["path"] == KEY_FILE for m in members))
    manifest["decrypted_dumps"] = decrypted
    data = encode(manifest)
    with AtomicFile(out) as dst:
        with tarfile.open(
            fileobj=dst.file, mode="w:gz", compresslevel=1, format=tarfile.PAX_FORMAT
        ) as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
            for rel, full in files:
                ti = tar.gettarinfo(full, arcname=rel)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = "root"
                with open(full, "rb") as f:
                    tar.addfile(ti, f)
        dst.commit()
    return {"bundle": out, "decrypted": decrypted}


def clean(directory: str) -> list[str]:
    """Removes decrypted dumps and the incident key file; returns them."""
    removed = []
    for rel, full in _walk(directory):
        if rel == KEY_FILE or (rel.startswith("dumps/") and not _is_sealed(full)):
            os.unlink(full)
            removed.append(rel)
    return removed
