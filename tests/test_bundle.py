"""Support bundles: collect, incident key, open anywhere, hostile archives."""

import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from coreseal.errors import (
    EXIT_FAILURE,
    EXIT_FORMAT,
    EXIT_INTEGRITY,
    EXIT_KEY,
    EXIT_PASSWORD,
    EXIT_UNSAFE,
    EXIT_USAGE,
)
from helpers import (
    COSEAL,
    assert_one_error_line,
    capture,
    files_under,
    open_with_keyfile,
    run,
    seal_vm,
)

PASSWORD = "correct horse 9c1f battery"
BIN = os.path.dirname(COSEAL)


@pytest.fixture
def host(sealed_root, tmp_path):
    """A sealed host with two dumps, a log, and a password file."""
    for i in (1, 2):
        data = b"\x7fELF" + f"BUNDLE-MARKER-{i} ".encode() * 20000
        r = capture(sealed_root, f"p{i}", data, time=i)
        assert r.code == 0, r.err
    (sealed_root / "var/log").mkdir(parents=True)
    (sealed_root / "var/log/syslog").write_text("kernel: something happened\n")
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    out = tmp_path / "out"
    out.mkdir()
    return sealed_root, pw, out


def collect(root, out, *args, env=None):
    r = run(root, "bundle", "collect", "-o", out, *args, env=env)
    assert r.code == 0, r.err
    return r.text.strip(), r


def members(bundle):
    with tarfile.open(bundle) as tar:
        return [m.name for m in tar.getmembers()]


def test_collect_with_password(host, tmp_path):
    root, pw, out = host
    bundle, r = collect(root, out, "--password-file", pw)
    name = os.path.basename(bundle)
    assert name.endswith(".tgz") and name.count(".") == 2
    assert os.stat(bundle).st_mode & 0o777 == 0o600
    names = members(bundle)
    assert names[0] == "manifest.json" and "incident-key-file" in names
    assert "events.jsonl" in names and any(n.startswith("logs/") for n in names)
    assert sum(n.startswith("dumps/") for n in names) == 2
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        blobs = {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}
    assert manifest["password_protected"] is True
    dumps = [m for m in manifest["members"] if m["type"] == "dump"]
    assert all(
        m["rewrapped"] and m["bound_to"][0].startswith("coreseal:incident/")
        for m in dumps
    )
    # Never: the provider's secret, the key cache, plaintext, the password.
    provider = json.loads((root / "var/lib/coreseal/provider/native.json").read_text())[
        "secret"
    ]
    for blob in blobs.values():
        assert PASSWORD.encode() not in blob and provider.encode() not in blob
        assert b"BUNDLE-MARKER" not in blob
    assert not any("native.json" in n or "keycache" in n for n in names)
    # The host's own dumps are unchanged: still under the host key.
    for f in (root / "var/lib/coreseal/dumps").iterdir():
        d = json.loads(run(root, "envelope", "describe", "--json", f).text)
        assert d["keys"][0]["key_kind"] == "host"
    (ev,) = [
        json.loads(ln)
        for ln in run(
            root, "events", "--json", "--type", "bundle-exported"
        ).text.splitlines()
    ]
    assert ev["rewrapped"] == 2 and ev["password_protected"]
    assert PASSWORD not in run(root, "events", "--json").text


def test_open_anywhere_with_key_file(host, tmp_path):
    root, pw, out = host
    bundle, _ = collect(root, out, "--password-file", pw)
    elsewhere = tmp_path / "support"
    elsewhere.mkdir()
    copy = elsewhere / os.path.basename(bundle)
    shutil.copy(bundle, copy)
    fresh = tmp_path / "fresh-root"  # no coreseal state, no keys at all
    r = run(fresh, "bundle", "extract", copy, elsewhere)
    assert r.code == 0, r.err
    d = elsewhere / os.path.basename(bundle)[:-4]
    dumps = sorted((d / "dumps").iterdir())
    for f in dumps:
        plain = f.with_suffix("")
        r = open_with_keyfile(fresh, d, f, pw, plain)
        assert r.code == 0, r.err
        assert plain.read_bytes().startswith(
            b"\x7fELF BUNDLE-MARKER"
        ) or plain.read_bytes().startswith(b"\x7fELFBUNDLE-MARKER")
    assert not fresh.exists()  # opening created no coreseal state
    # The password through the environment, the way scripts pass it.
    r = run(
        fresh,
        "envelope",
        "extract",
        "--keyfile",
        d / "incident-key-file",
        "--password",
        dumps[0],
        tmp_path / "env-out",
        env={"CORESEAL_PASSWORD": PASSWORD},
    )
    assert r.code == 0, r.err
    # Wrong password and damaged key file: one message, one exit code.
    bad_pw = tmp_path / "bad"
    bad_pw.write_text("nope\n")
    r1 = run(
        fresh,
        "envelope",
        "extract",
        "--keyfile",
        d / "incident-key-file",
        "--password-file",
        bad_pw,
        dumps[0],
        tmp_path / "x1",
    )
    damaged = tmp_path / "damaged-key"
    damaged.write_bytes((d / "incident-key-file").read_bytes()[:-40] + b"}\n")
    r2 = run(
        fresh,
        "envelope",
        "extract",
        "--keyfile",
        damaged,
        "--password-file",
        pw,
        dumps[0],
        tmp_path / "x2",
    )
    assert_one_error_line(r1, EXIT_PASSWORD)
    assert_one_error_line(r2, EXIT_PASSWORD)
    assert r1.err == r2.err
    assert not (tmp_path / "x1").exists() and not (tmp_path / "x2").exists()
    # A key file from another bundle opens nothing here.
    other_out = tmp_path / "other"
    other_out.mkdir()
    other_bundle, _ = collect(root, other_out, "--password-file", pw)
    with tarfile.open(other_bundle) as tar:
        (tmp_path / "other-key").write_bytes(
            tar.extractfile("incident-key-file").read()
        )
    r = run(
        fresh,
        "envelope",
        "extract",
        "--keyfile",
        tmp_path / "other-key",
        "--password-file",
        pw,
        dumps[0],
        tmp_path / "x3",
    )
    assert_one_error_line(r, EXIT_KEY, "another bundle")


def test_without_password_only_host_keys_open(host, tmp_path):
    root, _, out = host
    bundle, r = collect(root, out)
    assert "incident-key-file" not in members(bundle)
    dest = tmp_path / "x"
    dest.mkdir()
    assert run(tmp_path / "fresh", "bundle", "extract", bundle, dest).code == 0
    d = dest / os.path.basename(bundle)[:-4]
    dump = next((d / "dumps").iterdir())
    r = run(tmp_path / "fresh", "envelope", "extract", dump, tmp_path / "o")
    assert_one_error_line(r, EXIT_KEY, "not in the key cache")
    assert run(root, "envelope", "extract", dump, tmp_path / "o").code == 0


def test_dump_with_missing_key_goes_in_unchanged(host):
    root, pw, out = host
    ddir = root / "var/lib/coreseal/dumps"
    src = root / "vm.bin"
    src.write_bytes(b"vm" * 1000)
    assert run(root, "keys", "vm-key", "--create", "w").code == 0
    assert seal_vm(root, src, ddir / "core.vm.1.cse", "w").code == 0
    cfg = root / "etc/coreseal/coreseal.toml"
    # Lose the VM key from the cache only.
    from coreseal.keys.cache import KeyringCache
    from coreseal.paths import resolve

    cache = KeyringCache(resolve(str(root)))
    vm_id = [k.key_id for k in cache.list() if k.kind_name == "vm"][0]
    keep = [k for k in cache.list() if k.key_id != vm_id]
    cache.forget()
    for k in keep:
        cache.put(k)
    assert cfg.exists()
    bundle, r = collect(root, out, "--password-file", pw)
    assert "core.vm.1.cse is in the bundle under its own key" in r.err
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        raw = tar.extractfile("dumps/core.vm.1.cse").read()
    (m,) = [m for m in manifest["members"] if m["path"] == "dumps/core.vm.1.cse"]
    assert m["rewrapped"] is False and m["bound_to"] == [vm_id]
    assert raw == (ddir / "core.vm.1.cse").read_bytes()


def test_password_input_rules(host, tmp_path):
    root, _, out = host
    empty = tmp_path / "empty"
    empty.write_text("\n")
    r = run(root, "bundle", "collect", "-o", out, "--password-file", empty)
    assert_one_error_line(r, EXIT_USAGE, "empty")
    r = run(root, "bundle", "collect", "-o", out, "--password")
    assert_one_error_line(r, EXIT_USAGE, "no terminal")
    r = run(root, "bundle", "collect", "-o", out, "--password", "hunter2")
    assert r.code == EXIT_USAGE  # a password is never an option value
    r = run(
        root,
        "bundle",
        "collect",
        "-o",
        out,
        "--password",
        env={"CORESEAL_PASSWORD": ""},
    )
    assert_one_error_line(r, EXIT_USAGE, "empty password")
    assert os.listdir(out) == []
    bundle, _ = collect(root, out, "--password", env={"CORESEAL_PASSWORD": "s3cret"})
    assert "incident-key-file" in members(bundle)


# --- hostile archives --------------------------------------------------------


def make_tgz(path, entries, manifest=True):
    """entries: (TarInfo, bytes or None). A manifest listing the regular
    files goes first unless told otherwise."""
    import hashlib

    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        if manifest:
            listed = [
                {
                    "path": i.name,
                    "size": len(b),
                    "type": "file",
                    "sha256": hashlib.sha256(b).hexdigest(),
                }
                for i, b in entries
                if i.isreg() and b is not None
            ]
            data = json.dumps(
                {"format": "coreseal-bundle", "version": 1, "members": listed}
            ).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def entry(name, data=b"x", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, (data if kind == tarfile.REGTYPE else None)


HOSTILE = {
    "dotdot": [entry("../evil")],
    "dotdot-inner": [entry("dumps/../../evil")],
    "absolute": [entry("/tmp/coreseal-evil")],
    "symlink-out": [entry("logs/link", kind=tarfile.SYMTYPE, link="/etc/passwd")],
    "hardlink-out": [entry("logs/hard", kind=tarfile.LNKTYPE, link="/etc/passwd")],
    "device": [entry("dev", kind=tarfile.CHRTYPE)],
    "fifo": [entry("fifo", kind=tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_refused(case, tmp_path):
    bundle = make_tgz(tmp_path / "h.tgz", [entry("logs/ok", b"fine"), *HOSTILE[case]])
    dest = tmp_path / "dest"
    dest.mkdir()
    r = run(tmp_path / "r", "bundle", "extract", bundle, dest)
    assert r.code in (EXIT_UNSAFE, EXIT_FORMAT), r.err
    assert_one_error_line(r, r.code)
    assert os.listdir(dest) == []
    assert not os.path.exists("/tmp/coreseal-evil")


def test_changed_missing_and_extra_members(host, tmp_path):
    root, pw, out = host
    bundle, _ = collect(root, out, "--password-file", pw)
    with tarfile.open(bundle) as tar:
        items = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    manifest = items[0][1]

    def rebuild(name, items):
        path = tmp_path / name
        with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            for m, data in items:
                m = tarfile.TarInfo(m.name)
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
        return path

    changed = [
        (m, d if not m.name.startswith("logs/") else b"tampered log\n")
        for m, d in items
    ]
    same_size = [
        (m, d if not m.name.startswith("logs/") else d[:-2] + b"X\n") for m, d in items
    ]
    cases = {
        "changed-size": (rebuild("a.tgz", changed), EXIT_INTEGRITY),
        "changed-content": (rebuild("b.tgz", same_size), EXIT_INTEGRITY),
        "missing": (
            rebuild("c.tgz", [i for i in items if not i[0].name.startswith("dumps/")]),
            EXIT_INTEGRITY,
        ),
        "extra": (
            rebuild("d.tgz", [*items, (tarfile.TarInfo("extra"), b"x")]),
            EXIT_INTEGRITY,
        ),
        "no-manifest-first": (
            rebuild("e.tgz", items[1:] + [(items[0][0], manifest)]),
            EXIT_FORMAT,
        ),
    }
    for name, (path, code) in cases.items():
        dest = tmp_path / f"dest-{name}"
        dest.mkdir()
        r = run(tmp_path / "r", "bundle", "extract", path, dest)
        assert r.code == code, (name, r.err)
        assert_one_error_line(r, code)
        assert os.listdir(dest) == [], name


def test_truncated_anywhere(host, tmp_path):
    root, _, out = host
    bundle, _ = collect(root, out)
    with open(bundle, "rb") as f:
        blob = f.read()
    cuts = sorted(
        {
            1,
            4,
            8,
            20,
            100,
            1000,
            len(blob) // 3,
            len(blob) // 2,
            len(blob) - 1000,
            len(blob) - 8,
            len(blob) - 4,
            len(blob) - 1,
        }
    )
    for cut in cuts:
        path = tmp_path / "cut.tgz"
        path.write_bytes(blob[:cut])
        dest = tmp_path / f"d{cut}"
        dest.mkdir()
        r = run(tmp_path / "r", "bundle", "extract", path, dest)
        assert r.code in (EXIT_FORMAT, EXIT_INTEGRITY), (cut, r.code, r.err)
        assert_one_error_line(r, r.code)
        assert os.listdir(dest) == [], cut


def test_destination_symlink_and_space(host, tmp_path):
    root, _, out = host
    r = capture(root, "big", os.urandom(1 << 20), time=9)
    assert r.code == 0
    bundle, _ = collect(root, out)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / os.path.basename(bundle)[:-4]).symlink_to("/etc")
    r = run(tmp_path / "r", "bundle", "extract", bundle, dest)
    assert_one_error_line(r, EXIT_UNSAFE, "already exists")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", small], check=True
    )
    try:
        r = run(tmp_path / "r", "bundle", "extract", bundle, small)
        assert_one_error_line(r, EXIT_FAILURE, "not enough free space")
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", small], check=True)


def test_reconstruct_and_clean(host, tmp_path):
    root, pw, out = host
    bundle, _ = collect(root, out, "--password-file", pw)
    dest = tmp_path / "x"
    dest.mkdir()
    assert run(root, "bundle", "extract", bundle, dest).code == 0
    d = dest / os.path.basename(bundle)[:-4]
    dump = next((d / "dumps").iterdir())
    plain = d / "dumps" / dump.name[:-4]
    assert open_with_keyfile(root, d, dump, pw, plain).code == 0
    dump.unlink()  # the decrypted dump replaces the sealed one
    (d / "logs" / "escape").symlink_to("/etc/passwd")
    r = run(root, "bundle", "reconstruct", d, "-o", tmp_path / "re.tgz")
    assert_one_error_line(r, EXIT_UNSAFE, "not a plain file")
    (d / "logs" / "escape").unlink()
    r = run(root, "bundle", "reconstruct", d, "-o", tmp_path / "re.tgz")
    assert r.code == 0, r.err
    assert "decrypted dump" in r.err and "plaintext" in r.err
    with tarfile.open(tmp_path / "re.tgz") as tar:
        assert tar.getmembers()[0].name == "manifest.json"
        manifest = json.load(tar.extractfile("manifest.json"))
        assert all(m.pax_headers is not None for m in tar.getmembers())
    assert manifest["decrypted_dumps"] == [f"dumps/{plain.name}"]
    again = tmp_path / "again"
    again.mkdir()
    assert run(root, "bundle", "extract", tmp_path / "re.tgz", again).code == 0
    r = run(root, "bundle", "clean", d)
    assert r.code == 0 and "incident-key-file" in r.err
    left = [os.path.relpath(f, d) for f in files_under(d)]
    assert f"dumps/{plain.name}" not in left and "incident-key-file" not in left


def test_front_doors(host, tmp_path):
    root, pw, out = host
    env = {**os.environ, "CORESEAL_ROOT": str(root)}
    dump = next((root / "var/lib/coreseal/dumps").iterdir())
    p = subprocess.run(
        [f"{BIN}/crypto-util", "envelope", "describe", dump],
        capture_output=True,
        text=True,
        env=env,
    )
    line = next(ln for ln in p.stdout.splitlines() if "keyID" in ln)
    key_id = line.split("'")[1]
    p = subprocess.run(
        [f"{BIN}/crypto-util", "keys", "iskeyincache", key_id],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.stdout == "YES\n" and p.returncode == 0
    p = subprocess.run(
        [f"{BIN}/crypto-util", "keys", "iskeyincache", "coreseal:native/0/none"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.stdout == "NO\n"
    p = subprocess.run(
        [f"{BIN}/crypto-util", "envelope", "extract", dump, tmp_path / "core"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0 and (tmp_path / "core").exists()
    p = subprocess.run(
        [f"{BIN}/vm-support", "--password-file", pw, "-w", out],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    bundle = p.stdout.strip()
    dest = tmp_path / "vx"
    dest.mkdir()
    p = subprocess.run(
        [f"{BIN}/vm-support", "-x", bundle, dest],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    d = p.stdout.strip()
    p = subprocess.run(
        [f"{BIN}/vm-support", "--reconstruct", d],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0
    assert p.stdout.strip() == d.rstrip("/") + "-reconstructed.tgz"
    p = subprocess.run(
        [f"{BIN}/crypto-util", "envelope", "extract", "--bogus"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == EXIT_USAGE and p.stderr.startswith("coreseal: error:")
