"""The real kernel pipe: processes crash, the kernel runs the handler, the
dump is sealed, and gdb reads it back once extracted.

These tests change kernel.core_pattern, which is global to the machine:
each saves and restores it, and they must never run in parallel."""

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest

from helpers import files_under, open_with_keyfile, run

MARKER = b"CORESEAL-MARKER-a41c93e0"
CRASH_C = os.path.join(os.path.dirname(__file__), "..", "..", "demo", "crash.c")
PATTERN = "/proc/sys/kernel/core_pattern"
PIPE_LIMIT = "/proc/sys/kernel/core_pipe_limit"

pytestmark = pytest.mark.kernel


def read(path):
    with open(path) as f:
        return f.read()


def write(path, value):
    with open(path, "w") as f:
        f.write(value)


@pytest.fixture(scope="module")
def crasher(tmp_path_factory):
    exe = tmp_path_factory.mktemp("bin") / "crasher"
    subprocess.run(["gcc", "-g", "-O0", "-o", exe, CRASH_C], check=True)
    return exe


@pytest.fixture
def handler(sealed_root):
    with installed_handler(sealed_root):
        yield sealed_root


@contextlib.contextmanager
def installed_handler(root):
    """Installs the handler for ``root``; restores core_pattern whatever
    happens (it is global to the machine)."""
    saved = read(PATTERN), read(PIPE_LIMIT)
    try:
        r = run(root, "handler", "install")
        assert r.code == 0, r.err
        assert read(PATTERN).startswith("|/usr/local/libexec/coreseal/h-")
        yield root
        r = run(root, "handler", "uninstall")
        assert r.code == 0, r.err
        assert (read(PATTERN), read(PIPE_LIMIT)) == saved
    finally:
        write(PATTERN, saved[0])
        write(PIPE_LIMIT, saved[1])


def crash(exe, *args):
    """Runs the crasher with core dumps on; stdout is piped only for 'wait'."""
    out = subprocess.PIPE if args else subprocess.DEVNULL
    return subprocess.Popen(
        ["bash", "-c", 'ulimit -c unlimited; exec "$0" "$@"', exe, *args], stdout=out
    )


def events(root, type_):
    out = run(root, "events", "--json", "--type", type_).text
    return [json.loads(ln) for ln in out.splitlines()]


def wait_for(root, type_, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = events(root, type_)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {count} {type_} events after {timeout}s")


def assert_no_plaintext(root):
    for f in files_under(root):
        with open(f, "rb") as fh:
            data = fh.read()
        assert MARKER not in data, f
        assert b"\x7fELF" not in data, f


def test_crash_is_sealed_and_debuggable(handler, crasher, tmp_path):
    p = crash(crasher)
    assert p.wait(timeout=60) == -signal.SIGSEGV
    (ev,) = wait_for(handler, "dump-sealed", 1)
    host = json.loads(run(handler, "keys", "list", "--json").text)["key_id"]
    assert ev["key_id"] == host and ev["signal"] == signal.SIGSEGV
    assert ev["pid"] > 0 and ev["name"] == "crasher"
    dumps = handler / "var/lib/coreseal/dumps"
    assert os.listdir(dumps) == [ev["file"]]
    assert_no_plaintext(handler)
    info = json.loads(run(handler, "info", "--json", ev["file"]).text)
    assert info["metadata"]["exe"] == str(crasher)
    core = tmp_path / "core"
    r = run(handler, "envelope", "extract", dumps / ev["file"], core)
    assert r.code == 0, r.err
    assert core.read_bytes()[:4] == b"\x7fELF"
    gdb = subprocess.run(
        ["gdb", "-batch", "-ex", "bt", str(crasher), str(core)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "coreseal_crash_here" in gdb.stdout, gdb.stdout + gdb.stderr
    (dec,) = events(handler, "dump-decrypted")
    assert dec["key_id"] == host and dec["file"].endswith(ev["file"])


def test_missing_key_discards_then_sync_restores(handler, crasher):
    assert run(handler, "keys", "forget").code == 0
    assert crash(crasher).wait(timeout=60) == -signal.SIGSEGV
    (ev,) = wait_for(handler, "dump-discarded", 1)
    assert "key cache" in ev["reason"]
    assert os.listdir(handler / "var/lib/coreseal/dumps") == []
    assert_no_plaintext(handler)
    assert run(handler, "keys", "sync").code == 0
    assert crash(crasher).wait(timeout=60) == -signal.SIGSEGV
    wait_for(handler, "dump-sealed", 1)
    assert len(os.listdir(handler / "var/lib/coreseal/dumps")) == 1


def test_ten_crashes_at_once(handler, crasher):
    procs = [crash(crasher, "wait") for _ in range(10)]
    for p in procs:
        assert p.stdout.readline().endswith(b"ready\n")
    for p in procs:
        os.kill(p.pid, signal.SIGSEGV)
    for p in procs:
        assert p.wait(timeout=120) == -signal.SIGSEGV
        p.stdout.close()
    sealed = wait_for(handler, "dump-sealed", 10, timeout=120)
    assert len(sealed) == 10
    assert {e["pid"] for e in sealed} == {p.pid for p in procs}
    assert len(os.listdir(handler / "var/lib/coreseal/dumps")) == 10
    assert_no_plaintext(handler)


def _policy(root, policy: str, rules: str) -> None:
    cfg_path = root / "etc/coreseal/coreseal.toml"
    cfg = cfg_path.read_text().split("[[workloads]]")[0]
    cfg = cfg.replace('policy = "per-vm"', f'policy = "{policy}"').replace(
        'policy = "host-only"', f'policy = "{policy}"'
    )
    cfg_path.write_text(cfg + rules)


@pytest.fixture
def workload_cgroup():
    """A cgroup v2 group for the crashing workload (the unified hierarchy)."""
    base = next(
        (
            p
            for p in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
            if os.path.exists(os.path.join(p, "cgroup.procs"))
        ),
        None,
    )
    if base is None:
        pytest.skip("no cgroup v2 hierarchy here")
    path = os.path.join(base, f"coreseal-test-{os.getpid()}")
    os.mkdir(path)
    yield path, "/" + os.path.basename(path)
    os.rmdir(path)


def test_workload_crash_sealed_under_its_vm_key(handler, crasher, workload_cgroup):
    vm = json.loads(run(handler, "keys", "vm-key", "--create", "--json", "web").text)
    group_dir, group = workload_cgroup
    _policy(handler, "per-vm", f'[[workloads]]\nname = "web"\ncgroup = "{group}"\n')
    p = subprocess.Popen(
        [
            "bash",
            "-c",
            f'echo $$ > {group_dir}/cgroup.procs; ulimit -c unlimited; exec "$0"',
            crasher,
        ],
        stdout=subprocess.DEVNULL,
    )
    assert p.wait(timeout=60) == -signal.SIGSEGV
    (ev,) = wait_for(handler, "dump-sealed", 1)
    assert ev["key_id"] == vm["key_id"] and ev["key_kind"] == "vm"
    assert ev["vm"] == "web" and ev["dump_type"] == "vm"
    # An executable rule does the same; host-only gives the host key.
    _policy(
        handler, "per-vm", f'[[workloads]]\nname = "web"\nexe = "*/{crasher.name}"\n'
    )
    assert crash(crasher).wait(timeout=60) == -signal.SIGSEGV
    second = wait_for(handler, "dump-sealed", 2)[-1]
    assert second["key_id"] == vm["key_id"]
    _policy(
        handler, "host-only", f'[[workloads]]\nname = "web"\nexe = "*/{crasher.name}"\n'
    )
    assert crash(crasher).wait(timeout=60) == -signal.SIGSEGV
    third = wait_for(handler, "dump-sealed", 3)[-1]
    assert third["key_kind"] == "host" and third["vm"] == "web"
    assert_no_plaintext(handler)


def test_bundle_of_a_real_crash_opens_anywhere(handler, crasher, tmp_path):
    assert crash(crasher).wait(timeout=60) == -signal.SIGSEGV
    wait_for(handler, "dump-sealed", 1)
    pw = tmp_path / "pw"
    pw.write_text("support-password\n")
    out = tmp_path / "out"
    out.mkdir()
    r = run(handler, "bundle", "collect", "-o", out, "--password-file", pw)
    assert r.code == 0, r.err
    bundle = r.text.strip()
    # Only the bundle travels; the other side has no coreseal state or keys.
    support = tmp_path / "support"
    support.mkdir()
    copy = support / os.path.basename(bundle)
    with open(bundle, "rb") as a, open(copy, "wb") as b:
        b.write(a.read())
    fresh = tmp_path / "nothing-here"
    r = run(fresh, "bundle", "extract", copy, support)
    assert r.code == 0, r.err
    d = support / os.path.basename(bundle)[: -len(".tgz")]
    (dump,) = (d / "dumps").iterdir()
    core = tmp_path / "core"
    r = open_with_keyfile(fresh, d, dump, pw, core)
    assert r.code == 0, r.err
    gdb = subprocess.run(
        ["gdb", "-batch", "-ex", "bt", str(crasher), str(core)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "coreseal_crash_here" in gdb.stdout, gdb.stdout + gdb.stderr
