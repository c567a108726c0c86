"""Native provider, key cache, backup and restore, mismatch detection."""

import json
import os
import subprocess

import pytest

from conftest import write_config
from coreseal.errors import EXIT_KEY, EXIT_PASSWORD
from coreseal.keys.cache import FileCache, KeyringCache
from coreseal.keys.native import NativeProvider
from coreseal.paths import resolve
from coreseal.secret import Secret
from coreseal.wrapkey import KIND_HOST, WrappingKey
from helpers import assert_one_error_line, capture, files_under, run


def host_key_id(root) -> str:
    rows = [
        json.loads(ln) for ln in run(root, "keys", "list", "--json").text.splitlines()
    ]
    return next(r["key_id"] for r in rows if r["host_key"])


def test_setup_creates_provider_host_key_and_cache(root):
    r = run(root, "setup")
    assert r.code == 0, r.err
    assert "provider backup" in r.err  # tells the user to back up
    key_id = host_key_id(root)
    assert key_id.startswith("coreseal:native/") and key_id.endswith("/host-1")
    # Memory-only cache: the kernel keyring holds it, no key file on disk.
    paths = resolve(str(root))
    assert KeyringCache(paths).get(key_id) is not None
    assert not any("keycache" in f for f in files_under(root))
    keyctl = subprocess.run(
        ["keyctl", "search", "@u", "user", f"coreseal:{paths.tag}:{key_id}"],
        capture_output=True,
    )
    assert keyctl.returncode == 0
    provider = NativeProvider.load(paths)
    key_bytes = provider.get_key(key_id).secret.reveal()
    # The key's bytes appear nowhere but in the provider's own state file.
    for f in files_under(root):
        if not f.endswith("native.json"):
            with open(f, "rb") as fh:
                data = fh.read()
            assert key_bytes not in data and key_bytes.hex().encode() not in data
    assert oct(os.stat(paths.provider).st_mode & 0o777) == "0o700"
    events = run(root, "events", "--json", "--type", "sealed-mode-enabled").text
    assert json.loads(events)["key_id"] == key_id


def test_forget_sync_missing(sealed_root, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"data " * 1000)
    dumps = sealed_root / "var/lib/coreseal/dumps"
    assert run(sealed_root, "envelope", "seal", src, dumps / "core.x.1.cse").code == 0
    assert run(sealed_root, "keys", "missing", "--json").text == ""
    assert run(sealed_root, "keys", "forget").code == 0
    assert run(sealed_root, "keys", "list", "--json").text == ""
    rows = [
        json.loads(ln)
        for ln in run(sealed_root, "keys", "missing", "--json").text.splitlines()
    ]
    assert {r["file"] for r in rows} == {None, "core.x.1.cse"}
    assert all(r["reason"] == "not-cached" for r in rows)
    assert all(r["message"] == "not in the key cache" for r in rows)
    r = run(sealed_root, "keys", "sync")
    assert r.code == 0, r.err
    assert run(sealed_root, "keys", "missing", "--json").text == ""
    synced = json.loads(
        run(sealed_root, "events", "--json", "--type", "keys-synced").text
    )
    assert synced["loaded"] == 1 and synced["missing"] == []


def test_custom_key_with_same_id_is_detected(sealed_root, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"secret dump " * 1000)
    sealed = tmp_path / "f.cse"
    assert run(sealed_root, "envelope", "seal", src, sealed).code == 0
    key_id = host_key_id(sealed_root)
    cache = KeyringCache(resolve(str(sealed_root)))
    cache.put(WrappingKey(key_id, KIND_HOST, Secret(os.urandom(32))))
    r = run(sealed_root, "envelope", "extract", sealed, tmp_path / "out")
    assert_one_error_line(r, EXIT_KEY, "different key")
    assert not (tmp_path / "out").exists()
    dumps = sealed_root / "var/lib/coreseal/dumps"
    os.replace(sealed, dumps / "core.f.2.cse")
    rows = [
        json.loads(ln)
        for ln in run(sealed_root, "keys", "missing", "--json").text.splitlines()
    ]
    mismatch = {
        "key_id": key_id,
        "reason": "mismatch",
        "message": "the cache holds a different key with this ID",
    }
    assert rows == [
        {"file": None, "what": "host key", **mismatch},
        {"file": "core.f.2.cse", "what": "dump", **mismatch},
    ]
    # Nothing new is sealed under the custom key.
    r = run(sealed_root, "envelope", "seal", src, tmp_path / "new.cse")
    assert_one_error_line(r, EXIT_KEY, "not the provider's")
    r = capture(sealed_root, "x", b"x")
    assert r.code == 1 and "not the provider's" in r.err
    r = run(sealed_root, "keys", "sync")
    assert "different key" in r.err and r.code == 0
    assert (
        run(
            sealed_root, "envelope", "extract", dumps / "core.f.2.cse", tmp_path / "out"
        ).code
        == 0
    )


def test_backup_and_restore(sealed_root, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery staple\n")
    backup = tmp_path / "provider.backup"
    r = run(sealed_root, "provider", "backup", "--password-file", pw, backup)
    assert r.code == 0, r.err
    blob = backup.read_bytes()
    paths = resolve(str(sealed_root))
    provider_file = os.path.join(paths.provider, "native.json")
    with open(provider_file) as fh:
        secret_hex = json.load(fh)["secret"]
    assert secret_hex.encode() not in blob
    src = tmp_path / "f"
    src.write_bytes(b"x" * 5000)
    assert run(sealed_root, "envelope", "seal", src, tmp_path / "f.cse").code == 0
    # Lose the provider and the cache, as a reinstalled host would.
    os.unlink(provider_file)
    run(sealed_root, "keys", "forget")
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    r = run(sealed_root, "provider", "restore", "--password-file", wrong, backup)
    assert_one_error_line(r, EXIT_PASSWORD, "wrong password")
    assert not os.path.exists(provider_file)
    r = run(sealed_root, "provider", "restore", "--password-file", pw, backup)
    assert r.code == 0, r.err
    assert run(sealed_root, "keys", "sync").code == 0
    out = tmp_path / "back"
    assert run(sealed_root, "envelope", "extract", tmp_path / "f.cse", out).code == 0
    assert out.read_bytes() == src.read_bytes()
    assert "correct horse" not in run(sealed_root, "events", "--json").text


def test_file_cache_backend(root, tmp_path):
    r = run(root, "setup", "--cache", "file")
    assert r.code == 0, r.err
    rows = [
        json.loads(ln) for ln in run(root, "keys", "list", "--json").text.splitlines()
    ]
    assert rows[0]["cache"] == "file"
    cache_dir = root / "var/lib/coreseal/keycache"
    assert oct(os.stat(cache_dir).st_mode & 0o777) == "0o700"
    assert all(os.stat(f).st_mode & 0o077 == 0 for f in files_under(cache_dir))
    assert run(root, "keys", "forget").code == 0
    assert files_under(cache_dir) == []
    assert run(root, "keys", "sync").code == 0
    assert len(FileCache(resolve(str(root))).list()) == 1


def test_unknown_key_id_is_reported_missing(sealed_root, tmp_path):
    write_config(
        sealed_root,
        (sealed_root / "etc/coreseal/coreseal.toml")
        .read_text()
        .replace("/host-1", "/host-9"),
    )
    r = run(sealed_root, "keys", "sync")
    assert r.code == EXIT_KEY and "not found on the provider" in r.err


@pytest.mark.parametrize(
    "obj",
    [
        Secret(b"k" * 32),
        WrappingKey("coreseal:native/x/y", KIND_HOST, Secret(b"k" * 32)),
    ],
)
def test_secrets_have_redacted_repr(obj):
    assert "kkkk" not in repr(obj) and "6b6b" not in repr(obj)
    assert "kkkk" not in str(obj)
