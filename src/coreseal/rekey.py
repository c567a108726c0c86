"""Moving sealed dumps between keys: ``envelope recrypt`` and the rewrap
after a host key rotation.

Every output goes to an unnamed temporary file in the destination's
directory, is fsynced and verified (opened again with the target key), and
only then takes the destination's name. In place, a kill at any moment
leaves the old file or the new one, whole; plaintext never reaches a disk.
"""

import os
import stat

from . import events
from .envelope.extract import open_envelope
from .envelope.opener import read_header, segments, unlock
from .envelope.recrypt import reencrypt, rewrap
from .errors import KeyUnavailable, UsageError
from .fsutil import AtomicFile, check_output
from .hostkeys import cache_for
from .paths import Paths
from .wrapkey import WrappingKey, valid_key_id

KNOWN_PREFIXES = ("coreseal:native/", "coreseal:kmip/")


def target_key(cache, key_id: str) -> WrappingKey:
    if not valid_key_id(key_id) or not key_id.startswith(KNOWN_PREFIXES):
        raise UsageError(
            f"unknown key ID {key_id!r}",
            hint="key IDs look like coreseal:native/<provider>/<key> "
            "or coreseal:kmip/<cluster>/<uid>",
        )
    entry = cache.entry(key_id)
    if entry is None:
        raise KeyUnavailable(
            f"key {key_id} is not in the key cache", hint="run 'coreseal keys sync'"
        )
    if not entry.can_seal:
        raise KeyUnavailable(
            f"key {key_id} is revoked or deactivated: nothing new is sealed under it"
        )
    return entry.key


def recrypt(
    paths: Paths,
    src: str,
    out: str | None,
    to_id: str,
    *,
    deep: bool,
    offset: int = 0,
    force: bool = False,
    cache=None,
    threads: int = 0,
) -> dict:
    cache = cache or cache_for(paths)
    in_place = out is None
    dest = src if in_place else out
    if in_place:
        st = os.lstat(src)
        if stat.S_ISLNK(st.st_mode):
            raise UsageError(
                f"{src} is a symbolic link: recrypt its target "
                f"({os.path.realpath(src)}) in place instead"
            )
        if st.st_nlink > 1:
            raise UsageError(
                f"{src} has other hard links, which would keep the old key",
                hint="give an OUT file instead",
            )
    else:
        check_output(src, out, force)
    target = target_key(cache, to_id)
    with open(src, "rb") as f:
        unlocked = open_envelope(f, offset, cache.get)
        with AtomicFile(dest, replace=in_place or force) as tmp:
            if deep:
                reencrypt(f, unlocked, offset, [target], tmp.file, threads)
            else:
                rewrap(f, unlocked, offset, [target], tmp.file)
            tmp.file.flush()
            _verify(tmp.file, offset, target, full=deep)
            # The moved dump keeps its place among the others (storage limits
            # remove the oldest first) and, in place, its owner and mode.
            st = os.fstat(f.fileno())
            os.utime(tmp.file.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
            if in_place:
                os.fchown(tmp.file.fileno(), st.st_uid, st.st_gid)
                os.fchmod(tmp.file.fileno(), stat.S_IMODE(st.st_mode))
            tmp.commit()
    report = {
        "file": os.path.abspath(dest),
        "from_key_id": unlocked.entry.key_id,
        "to_key_id": target.key_id,
        "deep": deep,
        "payload_checked": deep,
    }
    events.record(paths, "dump-recrypted", **report)
    return report


def _verify(f, offset: int, key: WrappingKey, full: bool) -> None:
    """Opens the new file as a reader would; ``full`` checks every segment."""
    f.seek(0)
    header, raw = read_header(f, offset)
    unlocked = unlock(header, raw, {key.key_id: key}.get)
    if full:
        f.seek(offset + len(raw))
        for _ in segments(f, unlocked):
            pass
