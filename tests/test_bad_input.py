"""Bad input found by trying to break the CLI: each gets one clear line, a
documented exit code, and leaves no file behind."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import write_config
from coreseal.errors import EXIT_FAILURE, EXIT_FORMAT, EXIT_USAGE
from coreseal.keys.cache import KeyringCache
from coreseal.paths import resolve
from helpers import COSEAL, assert_one_error_line, run
from helpers import capture as capture_as


@pytest.fixture
def sealed(sealed_root, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(3 << 20))
    out = tmp_path / "in.cse"
    assert run(sealed_root, "envelope", "seal", src, out).code == 0
    return sealed_root, out


@pytest.fixture
def mount(tmp_path):
    mounted = []

    def make(options: str):
        d = tmp_path / f"mnt{len(mounted)}"
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", d], check=True)
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", d], check=True)


def test_output_directory_missing_or_empty_name(sealed, tmp_path):
    root, cse = sealed
    r = run(root, "envelope", "extract", cse, tmp_path / "nope" / "out")
    assert_one_error_line(r, EXIT_FAILURE, "no directory")
    r = run(root, "envelope", "extract", cse, "")
    assert_one_error_line(r, EXIT_USAGE, "empty")
    r = run(root, "envelope", "extract", cse, f"{tmp_path}/new/")
    assert_one_error_line(r, EXIT_USAGE, "names a directory")


def test_read_only_and_full_disks(sealed, mount, tmp_path):
    root, cse = sealed
    ro = mount("ro,size=1m")
    r = run(root, "envelope", "extract", cse, ro / "out")
    assert_one_error_line(r, EXIT_FAILURE, "not writable")
    small = mount("size=1m")
    r = run(root, "envelope", "extract", cse, small / "out")
    assert_one_error_line(r, EXIT_FAILURE, "No space left")
    assert os.listdir(small) == []
    src = tmp_path / "big"
    src.write_bytes(os.urandom(3 << 20))
    r = run(root, "envelope", "seal", src, small / "o.cse")
    assert_one_error_line(r, EXIT_FAILURE, "No space left")
    assert os.listdir(small) == []
    # No inode left: the error names the output, not a temporary name.
    no_inodes = mount("size=1m,nr_inodes=1")
    r = run(root, "envelope", "extract", cse, no_inodes / "out")
    assert_one_error_line(r, EXIT_FAILURE, f"No space left on device ({no_inodes}/out)")
    assert os.listdir(no_inodes) == []


def test_unseekable_input_and_directory(sealed):
    root, cse = sealed
    p = subprocess.run(
        f"cat {cse} | {COSEAL} --root {root} envelope describe /dev/stdin",
        shell=True,
        capture_output=True,
        text=True,
    )
    assert p.returncode == EXIT_USAGE and "not a regular file" in p.stderr
    assert "Traceback" not in p.stderr
    r = run(root, "info", "/tmp")
    assert_one_error_line(r, EXIT_USAGE, "no dump named")


def test_stdout_that_is_the_input(sealed):
    root, cse = sealed
    before = cse.read_bytes()
    with open(cse, "ab") as out:
        p = subprocess.run(
            [COSEAL, "--root", root, "envelope", "extract", cse, "-"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert p.returncode == EXIT_USAGE and "standard output is the input" in p.stderr
    assert cse.read_bytes() == before


def test_closed_stdin(sealed_root, tmp_path):
    for args in (
        ["capture", "3999999", "0", "0", "11", "1", "x"],
        ["envelope", "seal", "-", str(tmp_path / "o.cse")],
    ):
        p = subprocess.run(
            [COSEAL, "--root", sealed_root, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            preexec_fn=lambda: os.close(0),
        )
        assert p.returncode == EXIT_USAGE, p.stderr
        assert "standard input is closed" in p.stderr
    assert not (tmp_path / "o.cse").exists()


def test_empty_root_is_refused(tmp_path):
    r = run("", "list")
    assert_one_error_line(r, EXIT_USAGE, "empty")
    p = subprocess.run(
        [COSEAL, "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "CORESEAL_ROOT": ""},
    )
    assert p.returncode == EXIT_USAGE and "empty" in p.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["99999999999999999999"],
        ["-5"],
        ["١٢"],
        ["12x"],
    ],
)
def test_capture_numbers_are_strict(sealed_root, args):
    # The bad value goes in each of PID and TIME in turn.
    for pos in (0, 4):
        argv = ["3999999", "0", "0", "11", "1", "prog"]
        argv[pos] = args[0]
        r = run(sealed_root, "capture", *argv, stdin=b"x")
        assert_one_error_line(r, EXIT_USAGE, "must be a number")
    assert os.listdir(sealed_root / "var/lib/coreseal/dumps") == []


def test_hostile_backup_file(sealed_root, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    nested = tmp_path / "nested"
    nested.write_text("[" * 100000 + "]" * 100000)
    r = run(sealed_root, "provider", "restore", "--password-file", pw, nested)
    assert_one_error_line(r, EXIT_FAILURE, "not a coreseal provider backup")
    backup = tmp_path / "b"
    assert (
        run(sealed_root, "provider", "backup", "--password-file", pw, backup).code == 0
    )
    obj = json.loads(backup.read_text())
    obj["kdf"]["log_n"] = 17.9
    backup.write_text(json.dumps(obj))
    r = run(sealed_root, "provider", "restore", "--password-file", pw, backup)
    assert_one_error_line(r, EXIT_FAILURE, "not a coreseal provider backup")


def storage(root, text):
    cfg = (root / "etc/coreseal/coreseal.toml").read_text().split("[storage]")[0]
    write_config(root, cfg + "[storage]\n" + text)


def capture(root, data):
    return capture_as(root, "p", data)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("max_count = -1\n", "max_count"),
        ("max_dump_size = -1\n", "max_dump_size"),
        ('max_dump_size = "lots"\n', "max_dump_size"),
        ('on_oversize = "bogus"\n', "on_oversize"),
    ],
)
def test_bad_storage_config_deletes_nothing(sealed_root, text, fragment):
    assert capture(sealed_root, b"first dump").code == 0
    storage(sealed_root, text)
    r = capture(sealed_root, b"second dump")
    assert r.code == 1 and fragment in r.err and "Traceback" not in r.err
    assert len(os.listdir(sealed_root / "var/lib/coreseal/dumps")) == 1
    out = run(sealed_root, "events", "--json", "--type", "dump-discarded").text
    assert fragment in json.loads(out)["reason"]


def test_sizes_with_units_and_max_use_counts_sealed_bytes(sealed_root):
    storage(sealed_root, 'max_use = "10M"\nmax_dump_size = "1G"\n')
    r = capture(sealed_root, bytes(50 << 20))  # 50 MiB of zeros seal to ~1 KiB
    assert r.code == 0, r.err


def test_huge_offset_on_seal_is_cheap(sealed_root, tmp_path):
    src = tmp_path / "tiny"
    src.write_bytes(b"x" * 100)
    t0 = time.monotonic()
    # A small interpreter runs the command and reports its peak RSS: a child
    # forked straight from this (large) test process would count our pages.
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], "
        "capture_output=True, text=True); print(r.returncode, resource."
        "getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.stderr)"
    )
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            COSEAL,
            "--root",
            sealed_root,
            "envelope",
            "seal",
            "--offset",
            str(1 << 40),
            src,
            tmp_path / "o.cse",
        ],
        capture_output=True,
        text=True,
    )
    code, rss_kib = map(int, p.stdout.split("\n")[0].split())
    assert code == EXIT_USAGE and "past the end" in p.stdout
    assert time.monotonic() - t0 < 10
    assert rss_kib / 1024 < 200
    assert not (tmp_path / "o.cse").exists()


def test_switching_cache_backend_empties_the_old_one(sealed_root):
    paths = resolve(str(sealed_root))
    assert KeyringCache(paths).list()
    assert run(sealed_root, "setup", "--cache", "file").code == 0
    assert KeyringCache(paths).list() == []


def test_small_usage_details(sealed, tmp_path):
    root, cse = sealed
    p = subprocess.run([COSEAL], capture_output=True, text=True)
    assert p.returncode == EXIT_USAGE and "Usage:" in p.stdout
    assert "error" not in p.stderr
    r = run(root)
    assert_one_error_line(r, EXIT_USAGE, "Missing command")
    r = run(root, "events", "--since", "garbage")
    assert_one_error_line(r, EXIT_USAGE, "ISO 8601")
    r = run(root, "envelope", "seal", cse, "-")
    assert_one_error_line(r, EXIT_USAGE, "give OUT a file name")
    assert not os.path.exists("-")
    bad = tmp_path / "bad.cse"
    bad.write_bytes(cse.read_bytes()[:100])
    d = run(root, "envelope", "describe", "--json", bad)
    assert d.code == EXIT_FORMAT
    assert json.loads(d.text) == {
        "sealed": True,
        "error": "truncated header",
        "file": str(bad),
    }
    assert run(root, "keys", "missing").code == 0
    fresh = tmp_path / "fresh"
    assert run(fresh, "keys", "missing").code == EXIT_FAILURE
