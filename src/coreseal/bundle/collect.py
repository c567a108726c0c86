"""``bundle collect``: logs, events and sealed dumps into one archive.

Members are staged first in a private directory beside the dumps (hard
links of the sealed dumps, or their rewrapped copies), so the manifest,
which is written first, describes exactly the bytes that follow.
"""

import glob
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time

from .. import config, events
from ..dumps import list_dumps
from ..envelope.extract import open_envelope
from ..envelope.recrypt import rewrap
from ..errors import CoresealError
from ..fsutil import AtomicFile, private_dir
from ..hostkeys import cache_for
from ..paths import Paths
from ..secret import Secret
from . import KEY_FILE, MANIFEST
from .incident import key_file_bytes, new_incident_key
from .manifest import build, encode, member

DEFAULT_LOGS = [
    "var/log/syslog",
    "var/log/messages",
    "var/log/kern.log",
    "var/log/coreseal*.log",
]
GZIP_LEVEL = 1  # sealed dumps do not compress; level 1 keeps logs small


def bundle_name(host: str, when: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(when))
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in host)
    return f"{safe}.{stamp}.tgz"


def _logs(paths: Paths, cfg: dict) -> list[str]:
    patterns = cfg.get("bundle", {}).get("logs", DEFAULT_LOGS)
    found = []
    for pattern in patterns:
        full = (
            pattern
            if os.path.isabs(pattern) and paths.root == "/"
            else os.path.join(paths.root, pattern.lstrip("/"))
        )
        found += [
            p
            for p in sorted(glob.glob(full))
            if os.path.isfile(p) and not os.path.islink(p)
        ]
    return found


def collect(paths: Paths, out_dir: str, password: Secret | None) -> dict:
    cfg = config.load(paths)
    host = socket.gethostname()
    name = bundle_name(host)
    out = os.path.join(out_dir, name)
    if os.path.lexists(out):
        raise CoresealError(f"{out} exists")
    stage = tempfile.mkdtemp(prefix=".bundle-", dir=private_dir(paths.state))
    try:
        return _collect(paths, cfg, host, name, out, stage, password)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _collect(paths, cfg, host, name, out, stage, password) -> dict:
    members, files = [], []  # files: (archive path, staged path)
    for i, log in enumerate(_logs(paths, cfg)):
        arc = f"logs/{i:02d}-{os.path.basename(log)}"
        staged = os.path.join(stage, f"log-{i}")
        shutil.copyfile(log, staged, follow_symlinks=False)
        files.append((arc, staged))
        members.append(member(arc, staged, "log", origin=log))
    journal = os.path.join(stage, "events.jsonl")
    with open(journal, "w") as f:
        for e in events.query(paths):
            f.write(json.dumps(e, sort_keys=True) + "\n")
    files.append(("events.jsonl", journal))
    members.append(member("events.jsonl", journal, "events"))

    incident = new_incident_key() if password is not None else None
    cache = cache_for(paths, cfg)
    report = []
    for d in list_dumps(paths):
        arc = f"dumps/{d['file']}"
        staged = os.path.join(stage, d["file"])
        key_ids = [k["key_id"] for k in d.get("keys", [])]
        rewrapped, note = False, None
        if incident is not None and d.get("sealed"):
            try:
                _rewrap_copy(d["path"], d["offset"], cache, incident, staged)
                rewrapped = True
            except CoresealError as e:
                note = str(e)
        if not rewrapped:
            # A hard link is a snapshot: a later in-place recrypt makes a new
            # inode and leaves this one as it was.
            os.link(d["path"], staged)
        files.append((arc, staged))
        members.append(
            member(
                arc,
                staged,
                "dump",
                key_ids=key_ids,
                rewrapped=rewrapped,
                bound_to=[incident.key_id] if rewrapped else key_ids,
            )
        )
        report.append({"file": d["file"], "rewrapped": rewrapped, "note": note})
    if incident is not None:
        keyfile = os.path.join(stage, KEY_FILE)
        with open(keyfile, "wb") as f:
            f.write(key_file_bytes(incident, password, name))
        files.append((KEY_FILE, keyfile))
        members.append(
            member(KEY_FILE, keyfile, "incident-key-file", key_id=incident.key_id)
        )

    manifest = build(members, incident is not None, host)
    manifest_path = os.path.join(stage, MANIFEST)
    with open(manifest_path, "wb") as f:
        f.write(encode(manifest))
    with AtomicFile(out) as dst:
        with tarfile.open(
            fileobj=dst.file,
            mode="w:gz",
            compresslevel=GZIP_LEVEL,
            format=tarfile.PAX_FORMAT,
        ) as tar:
            for arc, staged in [(MANIFEST, manifest_path), *files]:
                tar.add(staged, arcname=arc, recursive=False, filter=_plain)
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


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Members carry no owner names or host modes: 0600 files, root."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o600
    return info


def _rewrap_copy(path: str, offset: int, cache, key, staged: str) -> None:
    with open(path, "rb") as f:
        unlocked = open_envelope(f, offset, cache.get)
        with open(staged, "xb") as dst:
            os.fchmod(dst.fileno(), 0o600)
            rewrap(f, unlocked, offset, [key], dst)
