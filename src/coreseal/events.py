"""The event journal: SQLite in WAL mode, safe for concurrent writers.

Events never carry secrets: a key appears by its ID only, a process by its
name and pid, never its command line or environment.
"""

import json
import os
import sqlite3
import time
from datetime import UTC, datetime

from .fsutil import private_dir
from .paths import Paths

TYPES = (
    "dump-sealed",
    "dump-discarded",
    "dump-decrypted",
    "key-missing",
    "keys-synced",
    "sealed-mode-enabled",
    "bundle-exported",
    "host-key-rotated",
    "dump-recrypted",
    "provider-unreachable",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
)
"""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _connect(paths: Paths) -> sqlite3.Connection:
    private_dir(paths.state)
    # Writers that meet while the journal is being created (or its mode
    # set) get "database is locked" at once, busy timeout or not: retry for
    # a bounded while.
    for attempt in range(200):
        db = sqlite3.connect(paths.events, timeout=30, isolation_level=None)
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute(_SCHEMA)
            return db
        except sqlite3.OperationalError as e:
            db.close()
            if "locked" not in str(e) and "busy" not in str(e) or attempt == 199:
                raise
            time.sleep(0.01 + 0.001 * attempt)
    raise AssertionError("unreachable")


def record(paths: Paths, type_: str, **data) -> dict:
    if type_ not in TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    event = {"time": now_iso(), "type": type_, **data}
    body = json.dumps(data, sort_keys=True)
    old = os.umask(0o077)
    try:
        db = _connect(paths)
        try:
            db.execute(
                "INSERT INTO events (time, type, data) VALUES (?, ?, ?)",
                (event["time"], type_, body),
            )
        finally:
            db.close()
    finally:
        os.umask(old)
    _syslog(event)
    return event


def query(paths: Paths, since: str | None = None, type_: str | None = None) -> list:
    if not os.path.exists(paths.events):
        return []
    db = _connect(paths)
    try:
        sql, args = "SELECT time, type, data FROM events WHERE 1=1", []
        if since:
            sql += " AND time >= ?"
            args.append(since)
        if type_:
            sql += " AND type = ?"
            args.append(type_)
        rows = db.execute(sql + " ORDER BY id", args).fetchall()
    finally:
        db.close()
    return [{"time": t, "type": ty, **json.loads(d)} for t, ty, d in rows]


def _syslog(event: dict) -> None:
    if not os.path.exists("/dev/log"):
        return
    import syslog

    fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("time",))
    syslog.openlog("coreseal", 0, syslog.LOG_DAEMON)
    syslog.syslog(syslog.LOG_NOTICE, fields)
