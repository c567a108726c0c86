"""The capture handler fed by hand (the kernel pipe is in integration/):
storage limits, missing keys, kill -9 and a full disk leave nothing."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import write_config
from helpers import COSEAL, files_under, run

ARGS = ["4242", "0", "0", "11", str(int(time.time())), "myprog"]


def dumps_dir(root):
    return root / "var/lib/coreseal/dumps"


def events(root, type_=None):
    args = ["events", "--json"] + (["--type", type_] if type_ else [])
    return [json.loads(ln) for ln in run(root, *args).text.splitlines()]


def set_storage(root, **limits):
    cfg = (root / "etc/coreseal/coreseal.toml").read_text()
    cfg = cfg.split("[storage]")[0] + "[storage]\n"
    for k, v in limits.items():
        cfg += f"{k} = {json.dumps(v)}\n"
    write_config(root, cfg)


def capture(root, data: bytes, name="myprog", pid="4242"):
    args = [pid, "0", "0", "11", str(int(time.time())), name]
    return run(root, "capture", *args, stdin=data)


def test_capture_seals_and_records(sealed_root):
    data = b"\x7fELF" + b"CORESEAL-MARKER " * 200000
    r = capture(sealed_root, data)
    assert r.code == 0, r.err
    (f,) = os.listdir(dumps_dir(sealed_root))
    assert f == r.text.strip() and f.startswith("core.myprog.4242.")
    blob = (dumps_dir(sealed_root) / f).read_bytes()
    assert b"CORESEAL-MARKER" not in blob and b"\x7fELF" not in blob
    (ev,) = events(sealed_root, "dump-sealed")
    assert ev["file"] == f and ev["size"] == len(data) and ev["signal"] == 11
    assert ev["name"] == "myprog" and ev["pid"] == 4242
    assert ev["key_id"].endswith("/host-1") and ev["time"].endswith("Z")
    info = json.loads(run(sealed_root, "info", "--json", f).text)
    assert info["metadata"]["pid"] == 4242 and info["key_state"] == "present"
    listed = [
        json.loads(ln)
        for ln in run(sealed_root, "list", "--json").text.split("\n")
        if ln
    ]
    assert [d["file"] for d in listed] == [f]


def test_no_key_discards(sealed_root):
    assert run(sealed_root, "keys", "forget").code == 0
    r = capture(sealed_root, b"x" * 100000)
    assert r.code == 1 and "host key is not in the key cache" in r.err
    assert os.listdir(dumps_dir(sealed_root)) == []
    (ev,) = events(sealed_root, "dump-discarded")
    assert "key cache" in ev["reason"] and ev["pid"] == 4242
    assert events(sealed_root, "key-missing")
    assert run(sealed_root, "keys", "sync").code == 0
    assert capture(sealed_root, b"x" * 100000).code == 0


def test_not_set_up_discards(root):
    r = capture(root, b"x" * 1000)
    assert r.code == 1 and "not set up" in r.err
    assert not any(f.endswith(".cse") for f in files_under(root))
    assert events(root, "dump-discarded")


def test_max_dump_size_truncates(sealed_root):
    set_storage(sealed_root, max_dump_size=3 << 20, on_oversize="truncate")
    data = os.urandom(5 << 20)
    assert capture(sealed_root, data).code == 0
    (ev,) = events(sealed_root, "dump-sealed")
    assert ev["truncated"] and ev["size"] == 3 << 20
    assert ev["original_size"] == 5 << 20
    info = json.loads(run(sealed_root, "info", "--json", ev["file"]).text)
    assert info["truncated"] and info["original_size"] == 5 << 20
    out = dumps_dir(sealed_root).parent / "out"
    assert run(sealed_root, "envelope", "extract", info["path"], out).code == 0
    assert out.read_bytes() == data[: 3 << 20]


def test_max_dump_size_drops(sealed_root):
    set_storage(sealed_root, max_dump_size=1 << 20, on_oversize="drop")
    assert capture(sealed_root, os.urandom(2 << 20)).code == 1
    assert os.listdir(dumps_dir(sealed_root)) == []
    (ev,) = events(sealed_root, "dump-discarded")
    assert "max_dump_size" in ev["reason"]
    assert capture(sealed_root, os.urandom(1 << 20)).code == 0  # at the limit


def pids_left(root):
    return sorted(n.split(".")[2] for n in os.listdir(dumps_dir(root)))


def test_max_count_and_use_remove_oldest(sealed_root):
    set_storage(sealed_root, max_count=2)
    for pid in ("1", "2", "3"):
        assert capture(sealed_root, os.urandom(300000), pid=pid).code == 0
        time.sleep(0.01)
    assert pids_left(sealed_root) == ["2", "3"]
    set_storage(sealed_root, max_use=700000)
    assert capture(sealed_root, os.urandom(300000), pid="4").code == 0
    assert pids_left(sealed_root) == ["3", "4"]
    # The dump being written is never removed, even when it alone is too big.
    set_storage(sealed_root, max_use=100000)
    assert capture(sealed_root, os.urandom(300000), pid="5").code == 1
    assert capture(sealed_root, os.urandom(50000), pid="6").code == 0
    assert pids_left(sealed_root) == ["6"]


def test_kill_9_leaves_nothing(sealed_root):
    p = subprocess.Popen(
        [COSEAL, "--root", sealed_root, "capture", *ARGS],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    p.stdin.write(os.urandom(8 << 20))
    p.stdin.flush()
    time.sleep(0.5)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdin.close()
    assert p.returncode == -signal.SIGKILL
    assert os.listdir(dumps_dir(sealed_root)) == []
    assert not [f for f in files_under(sealed_root) if "tmp" in os.path.basename(f)]


@pytest.fixture
def tiny_disk(sealed_root):
    d = dumps_dir(sealed_root)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", d], check=True
    )
    yield sealed_root
    subprocess.run(["umount", d], check=True)


def test_full_disk_discards(tiny_disk):
    r = capture(tiny_disk, os.urandom(6 << 20))
    assert r.code == 1 and "failed to write" in r.err
    assert os.listdir(dumps_dir(tiny_disk)) == []
    (ev,) = events(tiny_disk, "dump-discarded")
    assert "No space left" in ev["reason"]


def test_keep_free_discards(tiny_disk):
    set_storage(tiny_disk, keep_free=4 << 20)
    r = capture(tiny_disk, os.urandom(1000))
    assert r.code == 1 and "free space" in r.err
    assert os.listdir(dumps_dir(tiny_disk)) == []


def test_capture_threads_setting(sealed_root):
    cfg = (sealed_root / "etc/coreseal/coreseal.toml").read_text()
    assert "[capture]\nthreads = 0" in cfg  # setup writes the default
    write_config(
        sealed_root, cfg.replace("[capture]\nthreads = 0", "[capture]\nthreads = 1")
    )
    assert capture(sealed_root, os.urandom(3 << 20)).code == 0
    write_config(sealed_root, cfg.replace("threads = 0", 'threads = "many"'))
    r = capture(sealed_root, b"x")
    assert r.code == 1 and "threads" in r.err
