"""Bad input through the real CLI: one line, a documented code, no files."""

import json
import os
import pty
import subprocess

import pytest

from coreseal.errors import EXIT_FORMAT, EXIT_INTEGRITY, EXIT_KEY, EXIT_USAGE
from helpers import COSEAL, assert_one_error_line, run


@pytest.fixture
def sealed_file(sealed_root, tmp_path):
    src = tmp_path / "plain.bin"
    src.write_bytes(b"hello world\n" * 100000 + bytes(3 << 20) + os.urandom(5000))
    out = tmp_path / "plain.cse"
    r = run(sealed_root, "envelope", "seal", src, out)
    assert r.code == 0, r.err
    return sealed_root, src, out


def test_seal_extract_roundtrip_is_sparse(sealed_file, tmp_path):
    root, src, sealed = sealed_file
    out = tmp_path / "back.bin"
    r = run(root, "envelope", "extract", sealed, out)
    assert r.code == 0, r.err
    assert out.read_bytes() == src.read_bytes()
    st = os.stat(out)

    assert st.st_blocks * 512 <= st.st_size - (3 << 19)  # two zero segments
    assert b"hello world" not in sealed.read_bytes()


def test_extract_to_stdout_pipe(sealed_file):
    root, src, sealed = sealed_file
    r = run(root, "envelope", "extract", sealed, "-")
    assert r.code == 0, r.err
    assert r.out == src.read_bytes()


def test_extract_refuses_terminal(sealed_file, tmp_path):
    root, _, sealed = sealed_file
    primary, secondary = pty.openpty()
    p = subprocess.run(
        [COSEAL, "--root", root, "envelope", "extract", sealed, "-"],
        stdout=secondary,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    os.close(secondary)
    os.close(primary)
    assert p.returncode == EXIT_USAGE
    assert "terminal" in p.stderr.decode()


def test_empty_and_foreign_files(sealed_root, tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    text = tmp_path / "text"
    text.write_text("just text\n" * 50)
    for f in (empty, text):
        out = tmp_path / "out"
        r = run(sealed_root, "envelope", "extract", f, out)
        assert_one_error_line(r, EXIT_FORMAT, "not a coreseal envelope")
        assert not out.exists()
        d = run(sealed_root, "envelope", "describe", f)
        assert d.code == EXIT_FORMAT
        assert d.out == b"sealed: no\n"


def test_same_file_refused_before_opening(sealed_file, tmp_path):
    root, _, sealed = sealed_file
    before = sealed.read_bytes()
    hard = tmp_path / "hard.cse"
    os.link(sealed, hard)
    sym = tmp_path / "sym.cse"
    sym.symlink_to(sealed)
    for out in (sealed, hard, sym):
        for extra in ([], ["--force"]):
            r = run(root, "envelope", "extract", *extra, sealed, out)
            assert_one_error_line(r, EXIT_USAGE, "same file")
            assert sealed.read_bytes() == before


def test_existing_output(sealed_file, tmp_path):
    root, src, sealed = sealed_file
    out = tmp_path / "exists"
    out.write_bytes(b"keep me")
    r = run(root, "envelope", "extract", sealed, out)
    assert_one_error_line(r, EXIT_USAGE, "exists")
    assert out.read_bytes() == b"keep me"
    # --force with a failing decryption leaves the old OUT byte-identical.
    bad = tmp_path / "bad.cse"
    blob = bytearray(sealed.read_bytes())
    blob[-10] ^= 1
    bad.write_bytes(bytes(blob))
    r = run(root, "envelope", "extract", "--force", bad, out)
    assert_one_error_line(r, EXIT_INTEGRITY, "failed authentication")
    assert out.read_bytes() == b"keep me"
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["plain.bin", "plain.cse", "exists", "bad.cse", "root"]
    )
    r = run(root, "envelope", "extract", "--force", sealed, out)
    assert r.code == 0 and out.read_bytes() == src.read_bytes()


def test_offset_past_end(sealed_file, tmp_path):
    root, _, sealed = sealed_file
    r = run(root, "envelope", "extract", "--offset", 10**9, sealed, tmp_path / "o")
    assert_one_error_line(r, EXIT_FORMAT, "past the end")
    assert not (tmp_path / "o").exists()


def test_plain_prefix_and_hint(sealed_root, tmp_path):
    src = tmp_path / "vmcore"
    header = b"KDUMP   " + os.urandom(4088)
    src.write_bytes(header + b"kernel memory " * 50000)
    sealed = tmp_path / "vmcore.cse"
    r = run(
        sealed_root,
        "envelope",
        "seal",
        "--type",
        "kernel",
        "--offset",
        4096,
        src,
        sealed,
    )
    assert r.code == 0, r.err
    assert sealed.read_bytes()[:4096] == header  # readable by other tools
    d = run(sealed_root, "envelope", "describe", sealed)
    assert d.code == EXIT_FORMAT and "--offset 4096" in d.err
    d = run(sealed_root, "envelope", "describe", "--json", "--offset", 4096, sealed)
    info = json.loads(d.out)
    assert info["plain_prefix_length"] == 4096 and info["dump_type"] == "kernel"
    out = tmp_path / "back"
    assert (
        run(sealed_root, "envelope", "extract", "--offset", 4096, sealed, out).code == 0
    )
    assert out.read_bytes() == src.read_bytes()
    # One changed byte of the plain prefix makes extraction fail.
    blob = bytearray(sealed.read_bytes())
    blob[7] ^= 0x20
    sealed.write_bytes(bytes(blob))
    out.unlink()
    r = run(sealed_root, "envelope", "extract", "--offset", 4096, sealed, out)
    assert_one_error_line(r, EXIT_INTEGRITY, "plain prefix")
    assert not out.exists()


def test_seal_offset_past_end(sealed_root, tmp_path):
    src = tmp_path / "small"
    src.write_bytes(b"x" * 100)
    r = run(sealed_root, "envelope", "seal", "--offset", 4096, src, tmp_path / "o")
    assert_one_error_line(r, EXIT_USAGE, "past the end")
    assert not (tmp_path / "o").exists()


def test_describe_crypto_util_style_key_id(sealed_file):
    root, _, sealed = sealed_file
    d = run(root, "envelope", "describe", sealed)
    line = next(ln for ln in d.text.splitlines() if "keyID" in ln)
    key_id = line.split("'")[1]
    cfg = (root / "etc/coreseal/coreseal.toml").read_text()
    assert f'host_key_id = "{key_id}"' in cfg


def test_key_missing_exit_code(sealed_file, tmp_path):
    root, _, sealed = sealed_file
    assert run(root, "keys", "forget").code == 0
    r = run(root, "envelope", "extract", sealed, tmp_path / "o")
    assert_one_error_line(r, EXIT_KEY, "not in the key cache")
    assert not (tmp_path / "o").exists()


def test_usage_errors_have_house_voice(sealed_root):
    r = run(sealed_root, "envelope", "extract", "--bogus")
    assert_one_error_line(r, EXIT_USAGE)
    r = run(sealed_root, "envelope", "extract", "--offset", "-5", "a", "b")
    assert_one_error_line(r, EXIT_USAGE)


def test_threads_option_gives_the_same_plaintext(sealed_root, tmp_path):
    src = tmp_path / "in"
    src.write_bytes(os.urandom(3 << 20) + b"text " * 400000 + bytes(2 << 20))
    for n in (1, 2, 5):
        out = tmp_path / f"s{n}.cse"
        assert run(sealed_root, "envelope", "seal", "--threads", n, src, out).code == 0
        back = tmp_path / f"b{n}"
        r = run(sealed_root, "envelope", "extract", "--threads", n, out, back)
        assert r.code == 0, r.err
        assert back.read_bytes() == src.read_bytes()
    r = run(sealed_root, "envelope", "seal", "--threads", -1, src, tmp_path / "x")
    assert_one_error_line(r, EXIT_USAGE)


def test_no_sync_gives_the_same_files(sealed_root, tmp_path):
    src = tmp_path / "in"
    src.write_bytes(os.urandom(5 << 20) + bytes(6 << 20) + b"text " * 300000 + b"!")
    sealed = {}
    for flag in ([], ["--no-sync"]):
        out = tmp_path / f"s{len(flag)}.cse"
        r = run(sealed_root, "envelope", "seal", *flag, src, out)
        assert r.code == 0, r.err
        back = tmp_path / f"b{len(flag)}"
        r = run(sealed_root, "envelope", "extract", *flag, out, back)
        assert r.code == 0, r.err
        assert back.read_bytes() == src.read_bytes()
        assert os.stat(back).st_blocks * 512 < os.path.getsize(src) - (5 << 20)
        sealed[len(flag)] = out.stat().st_size
    assert sealed[0] == sealed[1]
