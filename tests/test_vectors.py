"""Every test vector, through the library and through the real CLI."""

import glob
import hashlib
import json
import os
import subprocess
import sys

import pytest

from conftest import VECTORS, write_config
from coreseal.envelope.extract import extract_stream, open_envelope
from coreseal.errors import (
    EXIT_FORMAT,
    EXIT_INTEGRITY,
    EXIT_KEY,
    IntegrityError,
    KeyMismatch,
    MalformedEnvelope,
    NotAnEnvelope,
    TruncatedEnvelope,
)
from coreseal.keys.cache import FileCache
from coreseal.paths import resolve
from coreseal.secret import Secret
from coreseal.wrapkey import KIND_HOST, WrappingKey
from helpers import assert_one_error_line, files_under, run

CASES = sorted(
    p
    for p in glob.glob(os.path.join(VECTORS, "*.json"))
    if not p.endswith("made-with.json")
)
EXCEPTIONS = {
    "truncated": TruncatedEnvelope,
    "malformed": MalformedEnvelope,
    "not-an-envelope": NotAnEnvelope,
    "integrity": IntegrityError,
    "key-mismatch": KeyMismatch,
}
EXIT = {
    "truncated": EXIT_FORMAT,
    "malformed": EXIT_FORMAT,
    "not-an-envelope": EXIT_FORMAT,
    "integrity": EXIT_INTEGRITY,
    "key-mismatch": EXIT_KEY,
}


def load(path):
    with open(path) as f:
        meta = json.load(f)
    return meta, path[: -len(".json")] + ".cse"


def key_of(meta):
    return WrappingKey(meta["key_id"], KIND_HOST, Secret(bytes.fromhex(meta["key"])))


def test_vectors_exist():
    # A loader that finds nothing must fail, not pass.
    assert len(CASES) >= 30
    outcomes = {load(p)[0]["expected"] for p in CASES}
    assert outcomes == {"ok", *EXCEPTIONS}


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-5])
def test_vector_library(path, tmp_path):
    meta, blob = load(path)
    key = key_of(meta)
    out = tmp_path / "out"
    with open(blob, "rb") as f, open(out, "wb") as o:

        def run_it():
            u = open_envelope(
                f, meta["offset"], lambda kid: key if kid == key.key_id else None
            )
            extract_stream(f, u, meta["offset"], o, sparse=True)

        if meta["expected"] == "ok":
            run_it()
        else:
            with pytest.raises(EXCEPTIONS[meta["expected"]]) as info:
                run_it()
            # Truncation is a kind of malformed file; nothing else may blur.
            if meta["expected"] == "malformed":
                assert not isinstance(info.value, TruncatedEnvelope)
            return
    data = out.read_bytes()
    assert len(data) == meta["plaintext_size"]
    assert hashlib.sha256(data).hexdigest() == meta["plaintext_sha256"]


@pytest.fixture
def vector_root(root):
    write_config(root, '[cache]\nbackend = "file"\n')
    return root


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-5])
def test_vector_cli(path, vector_root, tmp_path):
    meta, blob = load(path)
    FileCache(resolve(str(vector_root))).put(key_of(meta))
    outdir = tmp_path / "o"
    outdir.mkdir()
    out = outdir / "dump"
    r = run(vector_root, "envelope", "extract", "--offset", meta["offset"], blob, out)
    if meta["expected"] == "ok":
        assert r.code == 0, r.err
        data = out.read_bytes()
        assert hashlib.sha256(data).hexdigest() == meta["plaintext_sha256"]
        assert os.listdir(outdir) == ["dump"]
        d = run(
            vector_root,
            "envelope",
            "describe",
            "--json",
            "--offset",
            meta["offset"],
            blob,
        )
        assert d.code == 0
        info = json.loads(d.out)
        assert info["keys"][0]["key_id"] == meta["key_id"]
        assert info["dump_size"] + info["plain_prefix_length"] == len(data)
    else:
        assert_one_error_line(r, EXIT[meta["expected"]])
        assert os.listdir(outdir) == []  # no output, no temporary file


def test_vectors_are_reproducible(tmp_path):
    """The generator is deterministic: the committed bytes are what it makes
    (with the zstd the vectors were made with)."""
    import zstandard

    with open(os.path.join(VECTORS, "made-with.json")) as f:
        made_with = json.load(f)
    if made_with["zstandard"] != zstandard.__version__:
        pytest.skip(f"vectors made with zstandard {made_with['zstandard']}")
    script = os.path.join(os.path.dirname(VECTORS), "..", "scripts", "make_vectors.py")
    subprocess.run(
        [sys.executable, script, "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    made = {os.path.basename(p) for p in files_under(tmp_path)}
    committed = {n for n in os.listdir(VECTORS) if n.endswith((".cse", ".json"))}
    assert made == committed
    for name in sorted(made):
        with open(os.path.join(VECTORS, name), "rb") as a:
            assert a.read() == (tmp_path / name).read_bytes(), name
