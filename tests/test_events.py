"""The journal under concurrent writers, and its filters."""

import json
import multiprocessing
import os
import socket

import pytest

from coreseal import events
from coreseal.paths import resolve
from helpers import run


def _writer(root: str, n: int) -> None:
    paths = resolve(root)
    for i in range(n):
        events.record(paths, "dump-discarded", reason="test", i=i)


def test_concurrent_writers_lose_nothing(root):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(root), 50)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = events.query(resolve(str(root)))
    assert len(rows) == 300


def test_filters_and_json_lines(root):
    paths = resolve(str(root))
    events.record(paths, "keys-synced", loaded=1)
    first = events.query(paths)[0]["time"]
    events.record(paths, "dump-discarded", reason="x")
    out = run(root, "events", "--json", "--type", "dump-discarded").text.splitlines()
    assert [json.loads(ln)["type"] for ln in out] == ["dump-discarded"]
    out = run(root, "events", "--json", "--since", first).text.splitlines()
    assert len(out) == 2
    out = run(root, "events", "--json", "--since", "2999-01-01").text
    assert out == ""
    bad = run(root, "events", "--type", "nonsense")
    assert bad.code == 2


@pytest.fixture
def dev_log():
    """A syslog socket at /dev/log for the test's length (root only)."""
    if os.path.exists("/dev/log"):
        pytest.skip("a syslog daemon owns /dev/log on this machine")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/dev/log")
    sock.settimeout(5)
    yield sock
    sock.close()
    os.unlink("/dev/log")


def test_events_go_to_syslog(root, dev_log):
    events.record(resolve(str(root)), "keys-synced", loaded=3)
    msg = dev_log.recv(4096).decode()
    assert "coreseal" in msg and "type=keys-synced" in msg and "loaded=3" in msg
