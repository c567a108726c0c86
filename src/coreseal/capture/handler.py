"""The core_pattern handler: dump on stdin, sealed file out, or nothing.

The kernel starts this as root with a minimal environment and waits (up to
``core_pipe_limit`` handlers) while it runs. It never writes a plaintext
byte: segments are sealed in memory and only ciphertext reaches the disk,
into an unnamed file that is linked into the dumps directory once complete.
Without a usable key the dump is dropped and a ``dump-discarded`` event
says why. It reads keys from the key cache only, never from a provider, so
a slow or dead key server cannot hold a crashing process.
"""

import os
import re
import sys

from .. import config, events
from ..envelope import constants as c
from ..envelope.seal import DumpTooLarge, seal_stream
from ..errors import CoresealError
from ..fsutil import AtomicFile, private_dir
from ..keys.cache import open_cache
from ..paths import Paths, resolve
from ..policy import match_workload, sealing_key
from . import metadata, storage


class Discarded(Exception):
    def __init__(self, reason: str, **details):
        super().__init__(reason)
        self.details = details


class StorageFull(Exception):
    pass


def dump_file_name(meta: dict, attempt: int = 0) -> str:
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", str(meta.get("name") or "unknown"))[:64]
    stamp = meta.get("time", "").replace("-", "").replace(":", "")
    extra = f".{attempt}" if attempt else ""
    return f"core.{name}.{meta.get('pid', 0)}.{stamp}{extra}{storage.SUFFIX}"


def capture(
    paths: Paths,
    src,
    meta: dict,
    dump_type: int = c.DUMP_PROCESS,
    prefix_length: int = 0,
) -> dict:
    """Seals ``src`` into the dumps directory; returns the dump-sealed event.
    Raises Discarded (after recording the event) when the dump is dropped."""
    try:
        return _capture(paths, src, meta, dump_type, prefix_length)
    except Discarded as d:
        events.record(
            paths,
            "dump-discarded",
            reason=str(d),
            name=meta.get("name"),
            pid=meta.get("pid"),
            signal=meta.get("signal"),
            **d.details,
        )
        raise


def _capture(paths: Paths, src, meta: dict, dump_type: int, prefix_length: int) -> dict:
    try:
        cfg = config.load(paths)
    except CoresealError as e:
        raise Discarded(f"the configuration is unusable: {e}") from None
    if dump_type == c.DUMP_PROCESS:
        workload = match_workload(cfg, meta)
        if workload:
            dump_type, meta = c.DUMP_VM, {**meta, "vm": workload}
    else:
        workload = meta.get("vm")
    cache = open_cache(paths, cfg["cache"]["backend"])
    try:
        key = sealing_key(cfg, cache, dump_type, workload)
    except CoresealError as e:
        key_id = getattr(e, "key_id", None)
        if getattr(e, "missing", False):
            events.record(
                paths,
                "key-missing",
                key_id=key_id,
                reason="not-cached",
                message="not in the key cache",
                during="capture",
            )
        raise Discarded(str(e), **({"key_id": key_id} if key_id else {})) from None
    key_id = key.key_id
    limits = cfg["storage"]
    directory = private_dir(paths.dumps)
    storage.prune(directory, limits)
    if limits["keep_free"] and storage.free_bytes(directory) < limits["keep_free"]:
        raise Discarded("not enough free space for dumps", key_id=key_id)

    def check_room(_plain: int) -> None:
        # The limits are on what reaches the disk: sealed bytes.
        if not storage.room_left(directory, limits, out.file.tell()):
            raise StorageFull

    full_meta = {**meta, "hostname": metadata.hostname()}
    path = ""
    try:
        first = os.path.join(directory, dump_file_name(meta))
        with AtomicFile(first, direct=True) as out:  # _commit_unique names it
            result = seal_stream(
                src,
                out.file,
                [key],
                dump_type=dump_type,
                metadata=full_meta,
                prefix_length=prefix_length,
                threads=cfg["capture"]["threads"],
                max_size=limits["max_dump_size"] or None,
                on_oversize=limits["on_oversize"],
                progress=check_room,
            )
            path = _commit_unique(out, directory, meta)
    except DumpTooLarge:
        raise Discarded(
            f"the dump exceeds max_dump_size ({limits['max_dump_size']})", key_id=key_id
        ) from None
    except StorageFull:
        raise Discarded("storage limits reached while writing", key_id=key_id) from None
    except CoresealError as e:
        raise Discarded(str(e), key_id=key_id) from None
    except OSError as e:
        raise Discarded(
            f"failed to write the dump: {e.strerror}", key_id=key_id
        ) from None
    storage.prune(directory, limits, keep=path, size=result.stored_size)
    return events.record(
        paths,
        "dump-sealed",
        name=meta.get("name"),
        vm=workload,
        pid=meta.get("pid"),
        signal=meta.get("signal"),
        dump_time=meta.get("time"),
        dump_type=c.DUMP_TYPE_NAMES[dump_type],
        key_id=key.key_id,
        key_kind=key.kind_name,
        file=os.path.basename(path),
        size=result.dump_size,
        original_size=result.original_size,
        truncated=result.truncated,
        stored_size=result.stored_size,
    )


def _commit_unique(out: AtomicFile, directory: str, meta: dict) -> str:
    for attempt in range(100):
        out.path = os.path.join(directory, dump_file_name(meta, attempt))
        try:
            out.commit()
            return out.path
        except FileExistsError:
            continue
    raise OSError(17, "no free dump file name")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the launcher the kernel runs:
    ``handler --root ROOT PID UID GID SIGNAL TIME NAME...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    root = None
    if len(args) >= 2 and args[0] == "--root":
        root, args = args[1], args[2:]
    paths = resolve(root)
    try:
        meta = metadata.from_kernel(args)
        meta.update(metadata.from_proc(meta["pid"]))
    except ValueError as e:
        print(f"coreseal: error: {e}", file=sys.stderr)
        return 2
    try:
        capture(paths, sys.stdin.buffer, meta)
    except Discarded as d:
        print(f"coreseal: error: dump discarded: {d}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the kernel shows nobody a traceback
        # AtomicFile has already dropped any partial output.
        print(
            f"coreseal: error: dump discarded: {type(e).__name__}: {e}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
