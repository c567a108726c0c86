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

PLAIN_SIGNATURES = (b"\x7fELF", b"KDUMP   ", b"makedumpfile")


def _is_sealed(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096 + len(MAGIC))
    return head.startswith(MAGIC) or head[4096:].startswith(MAGIC)


def _looks_decrypted(rel: str, path: str) -> bool:
    """A plaintext dump: an unsealed file under dumps/, or anywhere a file
    that starts like a core, a kdump or a VM memory dump."""
    if rel.startswith("dumps/") and not _is_sealed(path):
        return True
    with open(path, "rb") as f:
        return f.read(16).startswith(PLAIN_SIGNATURES)


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
        plain = _looks_decrypted(rel, full)
        if plain:
            decrypted.append(rel)
        members.append(
            member(rel, full, kind, **({"decrypted": plain} if kind == "dump" else {}))
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
                # Always a plain member, even for a file with other hard
                # links: gettarinfo would make a link member, which extract
                # refuses.
                ti = tarfile.TarInfo(rel)
                st = os.stat(full)
                ti.size, ti.mode, ti.mtime = st.st_size, 0o600, int(st.st_mtime)
                ti.uname = ti.gname = "root"
                with open(full, "rb") as f:
                    tar.addfile(ti, f)
        dst.commit()
    return {"bundle": out, "decrypted": decrypted}


def clean(directory: str) -> list[str]:
    """Removes decrypted dumps and the incident key file; returns them."""
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory) or os.path.islink(directory):
        raise CoresealError(f"{directory} is not a directory")
    removed = []
    for rel, full in _walk(directory):
        if rel == KEY_FILE or _looks_decrypted(rel, full):
            os.unlink(full)
            removed.append(rel)
    return removed
