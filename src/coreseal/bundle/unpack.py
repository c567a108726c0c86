"""``bundle extract``: unpack a bundle only if every member checks out.

Everything goes into a fresh temporary directory inside DIR, which takes
its final name only at the end, so a refused bundle leaves nothing behind.
Only plain files and directories are accepted, with relative paths that
stay inside; each file must be in the manifest with its size and SHA-256,
and every manifest member must be there. The gzip stream is read to its end
so that a cut of a few bytes, which tarfile alone does not notice, is seen.
"""

import contextlib
import gzip
import hashlib
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib

from ..errors import CoresealError, IntegrityError, MalformedEnvelope, UnsafeArchive
from . import FORMAT, MANIFEST

MAX_MANIFEST = 16 << 20
MAX_TAIL = 1 << 20  # tar's end blocks and record padding are ~10 KiB


def _stem(bundle: str) -> str:
    base = os.path.basename(bundle)
    for suffix in (".tgz", ".tar.gz"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base + ".d"


def _valid_entry(m: dict) -> bool:
    size, digest = m["size"], m["sha256"]
    return (
        type(size) is int
        and 0 <= size < 1 << 50
        and isinstance(digest, str)
        and len(digest) == 64
        and all(c in "0123456789abcdef" for c in digest)
    )


def _safe_name(name: str) -> str:
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        raise UnsafeArchive(f"member {name!r} has an unsafe path")
    norm = posixpath.normpath(name)
    if norm in (".", "..") or norm.startswith("../") or "/../" in f"/{name}/":
        raise UnsafeArchive(f"member {name!r} leaves the destination")
    return norm


def _open(bundle: str):
    try:
        return tarfile.open(bundle, mode="r:gz")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise MalformedEnvelope(f"{bundle} is not a readable bundle ({e})") from None


def extract(bundle: str, dest_dir: str) -> dict:
    dest_dir = os.path.abspath(dest_dir)
    if not os.path.isdir(dest_dir):
        raise CoresealError(f"{dest_dir} is not a directory")
    final = os.path.join(dest_dir, _stem(bundle))
    if os.path.lexists(final):
        raise UnsafeArchive(
            f"{final} already exists", hint="remove it or pick another directory"
        )
    manifest = read_manifest(bundle)
    expected = {m["path"]: m for m in manifest["members"]}
    unpacked = sum(int(m["size"]) for m in manifest["members"])
    need = unpacked + 2 * os.path.getsize(bundle)  # unpacked, bundle, repacked
    free = shutil.disk_usage(dest_dir).free
    if free < need:
        raise CoresealError(
            f"not enough free space in {dest_dir}: {need} bytes "
            f"needed (unpacked and repacked), {free} free"
        )
    _remove_stale(dest_dir)
    tmp = tempfile.mkdtemp(prefix=f".coreseal-tmp-{os.getpid()}-", dir=dest_dir)
    try:
        seen = _unpack(bundle, tmp, expected)
        missing = sorted(set(expected) - (seen - {MANIFEST}))
        if missing:
            raise IntegrityError(
                f"the bundle lacks {missing[0]}, which its "
                "manifest lists (truncated or changed)"
            )
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"dir": final, "manifest": manifest}


def _remove_stale(dest_dir: str) -> None:
    """Temporary directories of extracts killed before they finished: their
    name carries the pid, which is no longer running."""
    for n in os.listdir(dest_dir):
        parts = n.split("-")
        if n.startswith(".coreseal-tmp-") and len(parts) > 3 and parts[2].isdigit():
            if not os.path.exists(f"/proc/{parts[2]}"):
                shutil.rmtree(os.path.join(dest_dir, n), ignore_errors=True)


def read_manifest(bundle: str) -> dict:
    with _open(bundle) as tar:
        try:
            first = tar.next()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise MalformedEnvelope(f"{bundle} is damaged ({e})") from None
        if first is None or first.name != MANIFEST or not first.isreg():
            raise MalformedEnvelope(f"{bundle} does not start with {MANIFEST}")
        if first.size > MAX_MANIFEST:
            raise UnsafeArchive("the manifest is too large")
        try:
            manifest = json.loads(tar.extractfile(first).read())
            if manifest["format"] != FORMAT or not isinstance(
                manifest["members"], list
            ):
                raise ValueError
            for m in manifest["members"]:
                if not isinstance(m["path"], str) or not _valid_entry(m):
                    raise ValueError
                _safe_name(m["path"])
        except (
            ValueError,
            KeyError,
            TypeError,
            RecursionError,
            EOFError,
            zlib.error,
            OSError,
            tarfile.TarError,
        ):
            raise MalformedEnvelope(f"{bundle} has no valid manifest") from None
    return manifest


def _unpack(bundle: str, tmp: str, expected: dict) -> set:
    seen = set()
    with _open(bundle) as tar:
        try:
            for info in tar:
                _member(tar, info, tmp, expected, seen)
            # Read the compressed stream to its end: gzip checks its length
            # and CRC there, which catches a cut in the final padding. What
            # follows the archive may only be its zero padding, and little.
            tail = 0
            while chunk := tar.fileobj.read(1 << 16):
                tail += len(chunk)
                if tail > MAX_TAIL or chunk.count(0) != len(chunk):
                    raise UnsafeArchive("data after the end of the archive")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise MalformedEnvelope(
                f"the bundle is truncated or damaged ({e})"
            ) from None
    return seen


def _member(tar, info, tmp: str, expected: dict, seen: set) -> None:
    name = _safe_name(info.name)
    if info.isdir():
        if not any(m.startswith(name + "/") for m in expected):
            raise IntegrityError(f"directory {name} is not in the manifest")
        try:
            os.makedirs(os.path.join(tmp, name), mode=0o700, exist_ok=True)
        except OSError as e:
            raise UnsafeArchive(
                f"member {name} cannot be unpacked: {e.strerror}"
            ) from None
        return
    if not info.isreg():
        kind = (
            "link"
            if info.issym() or info.islnk()
            else "device"
            if info.ischr() or info.isblk()
            else "fifo"
            if info.isfifo()
            else "special file"
        )
        raise UnsafeArchive(f"member {name} is a {kind}; only plain files are accepted")
    if name in seen:
        raise UnsafeArchive(f"member {name} appears twice")
    if name == MANIFEST:
        if seen:
            raise UnsafeArchive(f"{MANIFEST} is not the first member")
        want = None  # read and checked by read_manifest
    else:
        want = expected.get(name)
        if want is None:
            raise IntegrityError(f"member {name} is not in the manifest")
    if want is not None and info.size != int(want["size"]):
        raise IntegrityError(f"member {name} changed since collection (size)")
    path = os.path.join(tmp, name)
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
        real_tmp, real_parent = os.path.realpath(tmp), os.path.realpath(parent)
        if real_parent != real_tmp and not real_parent.startswith(real_tmp + os.sep):
            raise UnsafeArchive(f"member {name} leaves the destination")
        digest = hashlib.sha256()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with (
            os.fdopen(fd, "wb") as out,
            contextlib.closing(tar.extractfile(info)) as src,
        ):
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except OSError as e:
        # A member that clashes with another (a file, then a directory of the
        # same name) or cannot be named here: not a bundle we made.
        raise UnsafeArchive(f"member {name} cannot be unpacked: {e.strerror}") from None
    if want is not None and digest.hexdigest() != want["sha256"]:
        raise IntegrityError(f"member {name} changed since collection (SHA-256)")
    seen.add(name)
