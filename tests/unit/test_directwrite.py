"""The O_DIRECT writer: the same bytes as a plain file whatever the write,
seek and rewrite pattern; holes stay holes; errors stop it cleanly."""

import errno
import fcntl
import io
import os
import random
import subprocess
import sys
import threading
import time

import pytest

from coreseal import directwrite
from coreseal.directwrite import BLOCK, CHUNK, DirectWriter
from coreseal.fsutil import AtomicFile


def writers_alive():
    return [t for t in threading.enumerate() if t.name == "coreseal-writer"]


def open_direct(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
    return DirectWriter(fd, True)


def replay(ops, *files):
    for op, arg in ops:
        for f in files:
            if op == "write":
                f.write(arg)
            elif op == "seek":
                f.seek(arg, os.SEEK_CUR)
            elif op == "rewrite":
                pos, data = arg
                end = f.tell()
                f.seek(pos)
                f.write(data)
                f.seek(end)


def random_ops(rnd, count):
    ops, pos = [], 0
    for _ in range(count):
        kind = rnd.choice(["write", "write", "write", "seek", "rewrite"])
        if kind == "write":
            n = rnd.choice([1, 17, BLOCK - 1, BLOCK, 100_000, (1 << 20) + 3, CHUNK])
            ops.append(("write", rnd.randbytes(n)))
            pos += n
        elif kind == "seek":
            n = rnd.choice([1, BLOCK, 3 * BLOCK + 5, 1 << 20, 2 * CHUNK + 7])
            ops.append(("seek", n))
            pos += n
        elif pos > 10:
            at = rnd.randrange(pos - 10)
            ops.append(("rewrite", (at, rnd.randbytes(min(10, pos - at)))))
    return ops


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk", [CHUNK, 4 * BLOCK])
def test_same_bytes_as_a_plain_file(tmp_path, seed, chunk, monkeypatch):
    # Small buffers too, so that they are reused many times over.
    monkeypatch.setattr(directwrite, "CHUNK", chunk)
    rnd = random.Random(seed)
    ops = random_ops(rnd, 60)
    ref = io.BytesIO()
    w = open_direct(tmp_path / "out")
    replay(ops, ref, w)
    end = ref.tell() + (rnd.randrange(3) * BLOCK * 300)  # trailing zeros
    ref.truncate(end)
    w.truncate(end)
    w.finish()
    w.close()
    assert (tmp_path / "out").read_bytes() == ref.getvalue().ljust(end, b"\0")
    assert writers_alive() == []


def test_zeros_skipped_by_seeking_stay_holes(tmp_path):
    w = open_direct(tmp_path / "out")
    w.write(b"a" * (1 << 20))
    w.seek(64 << 20, os.SEEK_CUR)
    w.write(b"b" * 10)
    w.finish()
    w.close()
    st = os.stat(tmp_path / "out")
    assert st.st_size == (65 << 20) + 10
    assert st.st_blocks * 512 < 4 << 20


def test_a_refused_direct_write_goes_on_buffered(tmp_path, monkeypatch):
    real = os.pwrite
    refused = []

    def pwrite(fd, data, offset):
        # A filesystem that takes O_DIRECT at open and refuses its writes;
        # both writer threads may meet the refusal.
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(offset)
            time.sleep(0.02)  # both threads in here at once
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(directwrite.os, "pwrite", pwrite)
    w = open_direct(tmp_path / "out")
    rnd = random.Random(1)
    data = rnd.randbytes(5 * CHUNK + 5)
    for i in range(0, len(data), 1 << 20):
        w.write(data[i : i + (1 << 20)])
    w.finish()
    assert refused and not w.direct
    assert not fcntl.fcntl(w.fileno(), fcntl.F_GETFL) & os.O_DIRECT
    w.close()
    assert (tmp_path / "out").read_bytes() == data


@pytest.fixture
def tiny_fs(tmp_path):
    d = tmp_path / "tiny"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", d], check=True)
    yield d
    subprocess.run(["umount", d], check=True)


def test_a_full_disk_stops_the_writers_and_leaves_nothing(tiny_fs):
    with pytest.raises(OSError) as e:
        with AtomicFile(str(tiny_fs / "out"), direct=True) as out:
            for _ in range(8):
                out.file.write(bytes(range(256)) * 4096)
            out.commit()
    assert e.value.errno == errno.ENOSPC
    assert os.listdir(tiny_fs) == []
    assert writers_alive() == []


@pytest.mark.parametrize("sync", [True, False])
def test_atomic_file_direct_and_unsynced(tmp_path, sync):
    data = random.Random(2).randbytes(CHUNK + 123)
    with AtomicFile(str(tmp_path / "out"), direct=True, sync=sync) as out:
        assert isinstance(out.file, DirectWriter) == sync
        if sync:
            assert fcntl.fcntl(out.file.fileno(), fcntl.F_GETFL) & os.O_DIRECT
        out.file.write(data)
        out.commit()
    assert (tmp_path / "out").read_bytes() == data


def test_the_tail_never_goes_past_the_end(tmp_path):
    # A file-size limit of exactly the output's size: a last block padded
    # for O_DIRECT would pass it, and the write would fail.
    n = 3 * CHUNK + 5
    code = (
        "import os, resource, signal, sys\n"
        "from coreseal.directwrite import DirectWriter\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "n = int(sys.argv[2])\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)\n"
        "w = DirectWriter(fd, True)\n"
        "w.write(b'x' * n)\n"
        "w.finish()\n"
        "w.close()\n"
    )
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", code, out, str(n)], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"x" * n
