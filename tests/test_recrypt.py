"""Moving dumps between keys: shallow rewrap, deep re-encryption, in place,
and the rewrap that finishes a host key rotation."""

import json
import os
import signal
import statistics
import subprocess
import time

import pytest

from coreseal.envelope.opener import read_header
from coreseal.errors import EXIT_FORMAT, EXIT_KEY, EXIT_PARTIAL, EXIT_USAGE
from coreseal.keys.cache import KeyringCache
from coreseal.paths import resolve
from coreseal.wrapkey import InvalidUnwrap
from helpers import COSEAL, assert_one_error_line, capture, run, seal_vm


def key_ids(root):
    rows = [
        json.loads(ln)
        for ln in run(root, "keys", "list", "--json").text.split("\n")
        if ln
    ]
    return {r["key_kind"] if not r["host_key"] else "host": r["key_id"] for r in rows}


@pytest.fixture
def two_keys(sealed_root):
    r = run(sealed_root, "keys", "vm-key", "--create", "--json", "web")
    assert r.code == 0, r.err
    ids = key_ids(sealed_root)
    return sealed_root, ids["host"], ids["vm"]


def seal(root, tmp_path, data: bytes, name="d"):
    src = tmp_path / f"{name}.bin"
    src.write_bytes(data)
    out = tmp_path / f"{name}.cse"
    assert run(root, "envelope", "seal", src, out).code == 0
    return src, out


def header_keys(path):
    with open(path, "rb") as f:
        header, raw = read_header(f)
    return header, raw


def test_shallow_in_place_changes_only_the_header(two_keys, tmp_path):
    root, host, vm = two_keys
    src, sealed = seal(root, tmp_path, os.urandom(3 << 20))
    before = sealed.read_bytes()
    _, raw_before = header_keys(sealed)
    r = run(root, "envelope", "recrypt", "--to-id", vm, sealed)
    assert r.code == 0, r.err
    assert "not checked" in r.err
    after = sealed.read_bytes()
    header, raw_after = header_keys(sealed)
    assert [k.key_id for k in header.keys] == [vm]
    assert after[len(raw_after) :] == before[len(raw_before) :]  # payload untouched
    assert sorted(os.listdir(tmp_path)) == ["d.bin", "d.cse", "root"]
    out = tmp_path / "out"
    assert run(root, "envelope", "extract", sealed, out).code == 0
    assert out.read_bytes() == src.read_bytes()
    (ev,) = [
        json.loads(ln)
        for ln in run(
            root, "events", "--json", "--type", "dump-recrypted"
        ).text.splitlines()
    ]
    assert ev["from_key_id"] == host and ev["to_key_id"] == vm and not ev["deep"]


def test_shallow_does_not_read_a_corrupted_payload_deep_does(two_keys, tmp_path):
    root, _, vm = two_keys
    _, sealed = seal(root, tmp_path, os.urandom(2 << 20))
    blob = bytearray(sealed.read_bytes())
    blob[-100] ^= 1
    sealed.write_bytes(bytes(blob))
    damaged = sealed.read_bytes()
    r = run(root, "envelope", "recrypt", "--deep", "--to-id", vm, sealed)
    assert_one_error_line(r, 4, "failed authentication")
    assert sealed.read_bytes() == damaged  # input untouched
    r = run(root, "envelope", "recrypt", "--to-id", vm, sealed, tmp_path / "moved")
    assert r.code == 0 and "not checked" in r.err


def test_deep_leaves_the_old_key_nothing(two_keys, tmp_path):
    root, host, vm = two_keys
    src, sealed = seal(root, tmp_path, os.urandom(1 << 20) + bytes(3 << 20))
    old_header, _ = header_keys(sealed)
    out = tmp_path / "deep.cse"
    r = run(root, "envelope", "recrypt", "--deep", "--to-id", vm, sealed, out)
    assert r.code == 0, r.err
    new_header, _ = header_keys(out)
    assert new_header.salt != old_header.salt
    old_key = KeyringCache(resolve(str(root))).get(host)
    with pytest.raises(InvalidUnwrap):
        old_key.unwrap(new_header.keys[0].wrapped_key)
    back = tmp_path / "back"
    assert run(root, "envelope", "extract", out, back).code == 0
    assert back.read_bytes() == src.read_bytes()


def test_bad_recrypts(two_keys, tmp_path):
    root, host, vm = two_keys
    _, sealed = seal(root, tmp_path, b"x" * 10000)
    before = sealed.read_bytes()
    r = run(root, "envelope", "recrypt", "--to-id", "nonsense", sealed)
    assert_one_error_line(r, EXIT_USAGE, "unknown key ID")
    r = run(root, "envelope", "recrypt", "--to-id", "coreseal:native/0/none", sealed)
    assert_one_error_line(r, EXIT_KEY, "not in the key cache")
    link = tmp_path / "link.cse"
    link.symlink_to(sealed)
    r = run(root, "envelope", "recrypt", "--to-id", vm, sealed, link)
    assert_one_error_line(r, EXIT_USAGE, "same file")
    r = run(root, "envelope", "recrypt", "--offset", 4096, "--to-id", vm, sealed)
    assert_one_error_line(r, EXIT_FORMAT)
    cache = KeyringCache(resolve(str(root)))
    vm_key = cache.get(vm)
    cache.forget()
    cache.put(vm_key)  # the target is there, the dump's own key is not
    r = run(root, "envelope", "recrypt", "--to-id", vm, sealed)
    assert_one_error_line(r, EXIT_KEY, "not in the key cache")  # the source key
    assert sealed.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["d.bin", "d.cse", "link.cse", "root"]


def _median_time(cmd, runs=3):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_shallow_cost_does_not_grow_with_the_dump(two_keys, tmp_path):
    root, _, vm = two_keys
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB sparse
        f.seek(5 << 20)
        f.write(os.urandom(1 << 20))
    sealed_big = tmp_path / "big.cse"
    assert run(root, "envelope", "seal", big, sealed_big).code == 0
    big.unlink()
    _, sealed_small = seal(root, tmp_path, os.urandom(1 << 20), "small")
    host = key_ids(root)["host"]
    t = {}
    for name, path in (("big", sealed_big), ("small", sealed_small)):
        # Back and forth, so every run is a real rewrap.
        t[name] = statistics.median(
            [
                _median_time(
                    [
                        COSEAL,
                        "--root",
                        root,
                        "envelope",
                        "recrypt",
                        "--to-id",
                        key,
                        path,
                    ],
                    runs=1,
                )
                for key in (vm, host, vm, host)
            ]
        )
    assert t["big"] < 2 * t["small"] + 0.2, t


def test_kill_9_in_place_leaves_a_whole_file(two_keys, tmp_path):
    root, host, vm = two_keys
    src, sealed = seal(root, tmp_path, os.urandom(128 << 20))
    plain = src.read_bytes()
    killed = 0
    for delay in (0.05, 0.15, 0.3, 0.5, 0.8, 1.2):
        current = header_keys(sealed)[0].keys[0].key_id
        target = vm if current == host else host
        p = subprocess.Popen(
            [
                COSEAL,
                "--root",
                root,
                "envelope",
                "recrypt",
                "--deep",
                "--to-id",
                target,
                sealed,
            ],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        killed += p.wait() == -signal.SIGKILL
        after = header_keys(sealed)[0].keys[0].key_id
        assert after in (host, vm)
        out = tmp_path / "check"
        r = run(root, "envelope", "extract", "--force", sealed, out)
        assert r.code == 0, r.err
        assert out.read_bytes() == plain
        leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".coreseal")]
        assert leftovers == []
    assert killed >= 3  # most kills landed mid-recrypt


def test_rotate_with_rewrap(two_keys, tmp_path):
    root, old_host, vm = two_keys
    ddir = root / "var/lib/coreseal/dumps"
    for i in range(3):
        assert capture(root, f"p{i}", os.urandom(100000)).code == 0
    vm_src = tmp_path / "vm.bin"
    vm_src.write_bytes(b"vm memory" * 1000)
    assert seal_vm(root, vm_src, ddir / "core.vm.1.cse", "web").code == 0
    r = run(root, "keys", "rotate-host-key", "--rewrap", "--json")
    assert r.code == 0, r.err
    rows = [json.loads(ln) for ln in r.text.splitlines()[1:]]
    assert sorted(x["result"] for x in rows) == ["moved"] * 3
    assert "safe to retire" in r.err and old_host in r.err
    new_host = key_ids(root)["host"]
    for name in os.listdir(ddir):
        kid = header_keys(ddir / name)[0].keys[0].key_id
        assert kid == (vm if name == "core.vm.1.cse" else new_host)
    # A damaged dump cannot move: reported, distinct exit code, old key kept.
    victim = sorted(n for n in os.listdir(ddir) if n != "core.vm.1.cse")[0]
    blob = bytearray((ddir / victim).read_bytes())
    blob[30] ^= 1
    (ddir / victim).write_bytes(bytes(blob))
    r = run(root, "keys", "rotate-host-key", "--rewrap")
    assert r.code == EXIT_PARTIAL
    assert f"{victim}  corrupted" in r.text
    assert "keep it" in r.err
