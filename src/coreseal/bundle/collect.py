"""``bundle collect``: logs, events and sealed dumps into one archive.

Every member is opened (and each rewrapped header made) before anything is
written, and read through those open files, so the manifest, which is
written first, describes exactly the bytes that follow, and a kill leaves
no copy behind.
"""

import glob
import json
import os
import socket
import tarfile
import time

from .. import config, events
from ..dumps import list_dumps
from ..envelope.extract import open_envelope
from ..envelope.recrypt import rewrapped_header
from ..errors import CoresealError
from ..fsutil import AtomicFile
from ..hostkeys import cache_for
from ..paths import Paths
from ..secret import Secret
from . import KEY_FILE, MANIFEST
from .incident import key_file_bytes, new_incident_key
from .manifest import build, encode
from .stream import SEALED_LEVEL, TEXT_LEVEL, MultiGzip, Pieces

DEFAULT_LOGS = [
    "var/log/syslog",
    "var/log/messages",
    "var/log/kern.log",
    "var/log/coreseal*.log",
]


def bundle_name(host: str, when: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(when))
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in host)
    return f"{safe}.{stamp}.tgz"


def _logs(paths: Paths, cfg: dict) -> list[str]:
    """The log files the config names, under the root; never coreseal's own
    state (the provider's secret, the key cache, the dumps) nor its config,
    whatever a pattern says."""
    patterns = cfg.get("bundle", {}).get("logs", DEFAULT_LOGS)
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise CoresealError("[bundle] logs must be a list of file patterns")
    root = os.path.realpath(paths.root)
    private = [
        os.path.realpath(paths.state),
        os.path.realpath(os.path.dirname(paths.config)),
    ]
    found = []
    for pattern in patterns:
        if ".." in pattern.split("/"):
            raise CoresealError(f"[bundle] logs: {pattern!r} may not contain '..'")
        for p in sorted(glob.glob(os.path.join(paths.root, pattern.lstrip("/")))):
            real = os.path.realpath(p)
            inside = root == "/" or real.startswith(root + os.sep)
            mine = any(real == d or real.startswith(d + os.sep) for d in private)
            if inside and not mine and os.path.isfile(p) and not os.path.islink(p):
                found.append(p)
    return list(dict.fromkeys(found))


def collect(paths: Paths, out_dir: str, password: Secret | None) -> dict:
    cfg = config.load(paths)
    config.require_sealed(cfg)
    host = socket.gethostname()
    name = bundle_name(host)
    out = os.path.join(out_dir, name)
    if os.path.lexists(out):
        raise CoresealError(f"{out} exists")
    opened: list[int] = []
    try:
        return _gather_and_write(paths, cfg, host, name, out, password, opened)
    finally:
        for fd in opened:
            os.close(fd)


def _add(
    members, sources, arc: str, pieces: Pieces, kind: str, level: int, **extra
) -> None:
    members.append(
        {
            "path": arc,
            "type": kind,
            "size": pieces.size,
            "sha256": pieces.sha256(),
            **extra,
        }
    )
    sources.append((arc, pieces, level))


def _gather_and_write(paths, cfg, host, name, out, password, opened) -> dict:
    members, sources = [], []  # sources: (archive path, Pieces, gzip level)
    for i, log in enumerate(_logs(paths, cfg)):
        # Logs are read as they were when opened: a log that grows meanwhile
        # contributes what it held then.
        _add(
            members,
            sources,
            f"logs/{i:02d}-{os.path.basename(log)}",
            _file(log, opened),
            "log",
            TEXT_LEVEL,
            origin=log,
        )
    journal = "".join(
        json.dumps(e, sort_keys=True) + "\n" for e in events.query(paths)
    ).encode()
    _add(members, sources, "events.jsonl", Pieces([journal]), "events", TEXT_LEVEL)

    incident = new_incident_key() if password is not None else None
    cache = cache_for(paths, cfg)
    report = []
    for d in list_dumps(paths):
        try:
            fd = os.open(d["path"], os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue  # pruned meanwhile
        opened.append(fd)
        size = os.fstat(fd).st_size
        key_ids = [k["key_id"] for k in d.get("keys", [])]
        pieces = None
        note = None if d.get("sealed") else d.get("error", "not an envelope")
        if incident is not None and d.get("sealed"):
            try:
                pieces = _rewrapped(fd, size, d["offset"], cache, incident)
            except CoresealError as e:
                note = str(e)
        rewrapped = pieces is not None
        pieces = pieces or Pieces([(fd, 0, size)])
        _add(
            members,
            sources,
            f"dumps/{d['file']}",
            pieces,
            "dump",
            SEALED_LEVEL,
            key_ids=key_ids,
            rewrapped=rewrapped,
            bound_to=[incident.key_id] if rewrapped else key_ids,
        )
        report.append({"file": d["file"], "rewrapped": rewrapped, "note": note})
    if incident is not None:
        _add(
            members,
            sources,
            KEY_FILE,
            Pieces([key_file_bytes(incident, password, name)]),
            "incident-key-file",
            TEXT_LEVEL,
            key_id=incident.key_id,
        )

    manifest = encode(build(members, incident is not None, host))
    with AtomicFile(out) as dst:
        gz = MultiGzip(dst.file)
        with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for arc, pieces, level in [
                (MANIFEST, Pieces([manifest]), TEXT_LEVEL),
                *sources,
            ]:
                gz.level(level)
                tar.addfile(_info(arc, pieces.size), pieces.reader())
        gz.close()
        dst.commit()
    events.record(
        paths,
        "bundle-exported",
        bundle=os.path.abspath(out),
        dumps=len(report),
        rewrapped=sum(r["rewrapped"] for r in report),
        password_protected=incident is not None,
        incident_key_id=incident.key_id if incident else None,
    )
    return {"bundle": out, "dumps": report, "password_protected": incident is not None}


def _file(path: str, opened: list) -> Pieces:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    opened.append(fd)
    return Pieces([(fd, 0, os.fstat(fd).st_size)])


def _info(name: str, size: int) -> tarfile.TarInfo:
    """Members carry no owner names or host modes: 0600 files, root."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    info.uname = info.gname = "root"
    return info


def _rewrapped(fd: int, size: int, offset: int, cache, key) -> Pieces:
    """The dump with its header rewrapped to ``key``: new header bytes
    between the original prefix and payload, nothing copied."""
    with os.fdopen(os.dup(fd), "rb") as f:
        unlocked = open_envelope(f, offset, cache.get)
    start = offset + len(unlocked.raw)
    return Pieces(
        [(fd, 0, offset), rewrapped_header(unlocked, [key]), (fd, start, size - start)]
    )
