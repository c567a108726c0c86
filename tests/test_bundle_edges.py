"""Regressions from trying to break bundles, recrypt and the config."""

import gzip
import io
import json
import os
import tarfile

from conftest import write_config
from coreseal.errors import EXIT_FORMAT, EXIT_INTEGRITY, EXIT_UNSAFE, EXIT_USAGE
from helpers import assert_one_error_line, capture, run


def setup_host(root, tmp_path):
    assert capture(root, "p", os.urandom(50000)).code == 0
    out = tmp_path / "out"
    out.mkdir()
    return out


def collect(root, out, *args):
    r = run(root, "bundle", "collect", "-o", out, *args)
    assert r.code == 0, r.err
    return r.text.strip()


def test_extract_through_a_symlinked_directory(sealed_root, tmp_path):
    bundle = collect(sealed_root, setup_host(sealed_root, tmp_path))
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    r = run(sealed_root, "bundle", "extract", bundle, tmp_path / "link")
    assert r.code == 0, r.err


def test_logs_never_carry_coreseal_state(sealed_root, tmp_path):
    out = setup_host(sealed_root, tmp_path)
    cfg = (sealed_root / "etc/coreseal/coreseal.toml").read_text()
    write_config(
        sealed_root,
        cfg + '\n[bundle]\nlogs = ["var/lib/coreseal/**", '
        '"var/lib/coreseal/provider/*", "etc/coreseal/*"]\n',
    )
    bundle = collect(sealed_root, out)
    with tarfile.open(bundle) as tar:
        assert not [n for n in tar.getnames() if n.startswith("logs/")]
    write_config(sealed_root, cfg + '\n[bundle]\nlogs = ["../../etc/passwd"]\n')
    other = tmp_path / "other"
    other.mkdir()
    r = run(sealed_root, "bundle", "collect", "-o", other)
    assert_one_error_line(r, 1, "..")


def test_collect_needs_sealed_mode(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    r = run(tmp_path / "none", "bundle", "collect", "-o", out)
    assert_one_error_line(r, 1, "not in sealed mode")
    assert not (tmp_path / "none").exists() and os.listdir(out) == []


def test_reconstruct_with_hard_links_extracts_again(sealed_root, tmp_path):
    bundle = collect(sealed_root, setup_host(sealed_root, tmp_path))
    dest = tmp_path / "d"
    dest.mkdir()
    assert run(sealed_root, "bundle", "extract", bundle, dest).code == 0
    (d,) = dest.iterdir()
    os.link(d / "events.jsonl", d / "copy")
    assert (
        run(sealed_root, "bundle", "reconstruct", d, "-o", tmp_path / "r.tgz").code == 0
    )
    again = tmp_path / "again"
    again.mkdir()
    r = run(sealed_root, "bundle", "extract", tmp_path / "r.tgz", again)
    assert r.code == 0, r.err
    assert run(sealed_root, "bundle", "clean", tmp_path / "missing").code == 1


def test_trailing_data_and_unlisted_directories(sealed_root, tmp_path):
    bundle = collect(sealed_root, setup_host(sealed_root, tmp_path))
    with open(bundle, "rb") as f:
        blob = f.read()
    tailed = tmp_path / "tail.tgz"
    tailed.write_bytes(blob + gzip.compress(bytes(4 << 20)))
    with tarfile.open(bundle) as tar:
        items = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    extra_dir = tmp_path / "dir.tgz"
    with tarfile.open(extra_dir, "w:gz") as tar:
        for m, data in items:
            tar.addfile(m, io.BytesIO(data))
        d = tarfile.TarInfo("newdir")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
    for path, code in ((tailed, EXIT_UNSAFE), (extra_dir, EXIT_INTEGRITY)):
        dest = tmp_path / f"x-{path.stem}"
        dest.mkdir()
        r = run(sealed_root, "bundle", "extract", path, dest)
        assert_one_error_line(r, code)
        assert os.listdir(dest) == []


def test_malformed_manifest_fields(sealed_root, tmp_path):
    for i, entry in enumerate(
        [
            {"path": 5, "size": 1, "sha256": "0" * 64},
            {"path": "a", "size": 1e400, "sha256": "0" * 64},
            {"path": "a", "size": -1, "sha256": "0" * 64},
            {"path": "a", "size": 3.7, "sha256": "0" * 64},
        ]
    ):
        data = json.dumps(
            {"format": "coreseal-bundle", "version": 1, "members": [entry]}
        ).encode()
        path = tmp_path / f"m{i}.tgz"
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        dest = tmp_path / f"d{i}"
        dest.mkdir()
        r = run(sealed_root, "bundle", "extract", path, dest)
        assert_one_error_line(r, EXIT_FORMAT, "no valid manifest")


def test_recrypt_in_place_refuses_links(sealed_root, tmp_path):
    vm = json.loads(run(sealed_root, "keys", "vm-key", "--create", "--json", "w").text)[
        "key_id"
    ]
    src = tmp_path / "f"
    src.write_bytes(b"x" * 1000)
    real = tmp_path / "real.cse"
    assert run(sealed_root, "envelope", "seal", src, real).code == 0
    (tmp_path / "sym.cse").symlink_to(real)
    r = run(sealed_root, "envelope", "recrypt", "--to-id", vm, tmp_path / "sym.cse")
    assert_one_error_line(r, EXIT_USAGE, "symbolic link")
    os.link(real, tmp_path / "hard.cse")
    r = run(sealed_root, "envelope", "recrypt", "--to-id", vm, real)
    assert_one_error_line(r, EXIT_USAGE, "hard links")
    os.unlink(tmp_path / "hard.cse")
    os.chmod(real, 0o640)
    before = os.stat(real)
    assert run(sealed_root, "envelope", "recrypt", "--to-id", vm, real).code == 0
    after = os.stat(real)
    assert after.st_mode == before.st_mode and after.st_mtime == before.st_mtime


def test_rotation_moves_kernel_dumps_with_a_header(sealed_root):
    data = b"KDUMP   " + bytes(4088) + os.urandom(20000)
    r = run(sealed_root, "capture", "--type", "kernel", "--offset", 4096, stdin=data)
    assert r.code == 0, r.err
    r = run(sealed_root, "keys", "rotate-host-key", "--rewrap")
    assert r.code == 0, r.text + r.err
    assert "moved" in r.text


def test_bad_workload_rules_discard_with_an_event(sealed_root):
    cfg = (sealed_root / "etc/coreseal/coreseal.toml").read_text()
    for bad in (
        "workloads = [1, 2]\n",
        '[[workloads]]\nname = "../x"\nexe = "*"\n',
        '[[workloads]]\nname = "w"\n',
        'workloads = "web"\n',
    ):
        text = (bad + cfg) if bad.startswith("workloads =") else (cfg + "\n" + bad)
        write_config(sealed_root, text)
        r = capture(sealed_root, "p", b"x")
        assert r.code == 1 and "workload" in r.err and "internal" not in r.err, bad
    events = run(sealed_root, "events", "--json", "--type", "dump-discarded").text
    assert len(events.splitlines()) == 4


def test_password_file_first_line(sealed_root, tmp_path):
    out = setup_host(sealed_root, tmp_path)
    pw = tmp_path / "pw"
    pw.write_text("first\nsecond\n")
    bundle = collect(sealed_root, out, "--password-file", pw)
    dest = tmp_path / "d"
    dest.mkdir()
    assert run(sealed_root, "bundle", "extract", bundle, dest).code == 0
    (d,) = dest.iterdir()
    (dump,) = (d / "dumps").iterdir()
    one = tmp_path / "one"
    one.write_text("first\n")
    r = run(
        tmp_path / "fresh",
        "envelope",
        "extract",
        "--keyfile",
        d / "incident-key-file",
        "--password-file",
        one,
        dump,
        tmp_path / "c",
    )
    assert r.code == 0, r.err
    r = run(
        sealed_root, "bundle", "collect", "-o", out, "--password", "--password-file", pw
    )
    assert_one_error_line(r, EXIT_USAGE, "do not go together")
