"""VM dumps from a real VM (QEMU, software emulation, dump-guest-memory),
in ELF and in QEMU's kdump format, whose 4096-byte header block stays
readable as a plain prefix."""

import hashlib
import json
import os

import pytest

from conftest import write_config
from coreseal.errors import EXIT_INTEGRITY, EXIT_KEY
from helpers import assert_one_error_line, run
from qemu_vm import QemuVM


@pytest.fixture(scope="module")
def vm_dumps(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("vm"))
    vm = QemuVM(d)
    try:
        elf = vm.dump(os.path.join(d, "guest.elf"), "elf")
        kdump = vm.dump(os.path.join(d, "guest.kdump"), "kdump-zlib")
    finally:
        vm.close()
    return elf, kdump


def sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture
def vm_root(sealed_root):
    r = run(sealed_root, "keys", "vm-key", "--create", "--json", "guest1")
    assert r.code == 0, r.err
    return sealed_root, json.loads(r.text)["key_id"]


def test_elf_vm_dump_sealed_under_its_vm_key(vm_root, vm_dumps, tmp_path):
    root, vm_key = vm_root
    elf, _ = vm_dumps
    out = tmp_path / "guest.cse"
    r = run(root, "envelope", "seal", "--type", "vm", "--vm", "guest1", elf, out)
    assert r.code == 0, r.err
    info = json.loads(run(root, "envelope", "describe", "--json", out).text)
    assert info["dump_type"] == "vm" and info["metadata"]["vm"] == "guest1"
    assert [(k["key_id"], k["key_kind"]) for k in info["keys"]] == [(vm_key, "vm")]
    back = tmp_path / "guest.elf"
    assert run(root, "envelope", "extract", out, back).code == 0
    assert sha(back) == sha(elf)


def test_kdump_header_stays_readable(vm_root, vm_dumps, tmp_path):
    root, _ = vm_root
    _, kdump = vm_dumps
    with open(kdump, "rb") as f:
        header = f.read(4096)
    with open(kdump, "rb") as f:
        data = f.read()
    r = run(root, "capture", "--type", "kernel", "--offset", 4096, stdin=data)
    assert r.code == 0, r.err
    sealed = root / "var/lib/coreseal/dumps" / r.text.strip()
    assert sealed.read_bytes()[:4096] == header
    (ev,) = [
        json.loads(ln)
        for ln in run(
            root, "events", "--json", "--type", "dump-sealed"
        ).text.splitlines()
    ]
    assert ev["dump_type"] == "kernel" and ev["key_kind"] == "host"
    back = tmp_path / "back"
    assert run(root, "envelope", "extract", "--offset", 4096, sealed, back).code == 0
    assert sha(back) == sha(kdump)
    r = run(root, "envelope", "extract", sealed, tmp_path / "x")
    assert r.code == 3 and "--offset 4096" in r.err  # the offset must match
    blob = bytearray(sealed.read_bytes())
    blob[100] ^= 1
    sealed.write_bytes(bytes(blob))
    r = run(root, "envelope", "extract", "--offset", 4096, sealed, tmp_path / "y")
    assert_one_error_line(r, EXIT_INTEGRITY, "plain prefix")
    assert not (tmp_path / "y").exists()


def test_vm_dump_never_falls_back_to_the_host_key(vm_root, vm_dumps):
    root, _ = vm_root
    elf, _ = vm_dumps
    with open(elf, "rb") as f:
        data = f.read()
    r = run(root, "capture", "--type", "vm", "--vm", "nokey", stdin=data)
    assert r.code == 1 and "workload nokey has no VM key" in r.err
    assert os.listdir(root / "var/lib/coreseal/dumps") == []
    assert run(root, "keys", "forget").code == 0
    r = run(root, "capture", "--type", "vm", "--vm", "guest1", stdin=data)
    assert r.code == 1 and "VM key of workload guest1 is not in the key cache" in r.err
    assert os.listdir(root / "var/lib/coreseal/dumps") == []
    events = run(root, "events", "--json", "--type", "dump-discarded").text
    assert len(events.splitlines()) == 2
    # host-only: every dump gets the host key.
    assert run(root, "keys", "sync").code == 0
    cfg = (root / "etc/coreseal/coreseal.toml").read_text()
    write_config(root, cfg.replace('policy = "per-vm"', 'policy = "host-only"'))
    r = run(root, "capture", "--type", "vm", "--vm", "guest1", stdin=data)
    assert r.code == 0, r.err
    info = json.loads(run(root, "info", "--json", r.text.strip()).text)
    assert info["dump_type"] == "vm" and info["keys"][0]["key_kind"] == "host"
    r = run(
        root, "envelope", "seal", "--type", "vm", "--vm", "guest1", elf, root / "x.cse"
    )
    assert r.code == 0
    write_config(root, cfg)
    run(root, "keys", "forget")
    r = run(
        root, "envelope", "seal", "--type", "vm", "--vm", "guest1", elf, root / "y.cse"
    )
    assert_one_error_line(r, EXIT_KEY, "VM key of workload guest1")
