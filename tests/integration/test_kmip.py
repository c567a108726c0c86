"""The KMIP provider against real PyKMIP servers over TLS on 127.0.0.1.

Two servers share one database, as the nodes of a replicated cluster do,
so a key made through one is served by the other."""

import io
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from coreseal.envelope.seal import seal_stream
from coreseal.errors import EXIT_FAILURE, EXIT_KEY
from coreseal.keys.cache import KeyringCache
from coreseal.keys.kmip import KmipProvider, KmipSettings
from coreseal.keys.provider import ProviderUnreachable
from coreseal.paths import resolve
from coreseal.secret import Secret
from coreseal.wrapkey import KIND_HOST, WrappingKey
from helpers import assert_one_error_line, files_under, open_with_keyfile, run
from helpers import capture as capture_as
from integration.test_kernel_pipe import CRASH_C, crash, installed_handler, wait_for
from kmip_server import KmipServer, free_port
from pki import CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    ca = CA(d)
    cert, key = ca.issue("coreseal-client")
    return {"dir": d, "ca": ca, "cert": cert, "key": key}


@pytest.fixture(scope="module")
def cluster(pki):
    db = os.path.join(pki["dir"], "shared.db")
    a = KmipServer(pki["dir"], pki["ca"], "kmip-a", database=db).start()
    b = KmipServer(pki["dir"], pki["ca"], "kmip-b", database=db).start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def servers(cluster):
    """Both servers up at the start of each test, whatever the last did."""
    for s in cluster:
        if s.proc is None:
            s.start()
    return cluster


def setup_args(pki, *servers, ca=None, cert=None, key=None, timeout=2):
    args = ["setup", "--provider", "kmip"]
    for s in servers:
        args += ["--kmip-server", s if isinstance(s, str) else s.address]
    return args + [
        "--kmip-cert",
        cert or pki["cert"],
        "--kmip-key",
        key or pki["key"],
        "--kmip-ca",
        ca or pki["ca"].path,
        "--kmip-cluster",
        "test",
        "--kmip-timeout",
        timeout,
    ]


@pytest.fixture
def kmip_root(root, pki, servers):
    r = run(root, *setup_args(pki, *servers))
    assert r.code == 0, r.err
    return root


def provider_for(root) -> KmipProvider:
    import tomllib

    cfg = tomllib.loads((root / "etc/coreseal/coreseal.toml").read_text())
    return KmipProvider(KmipSettings.from_config(cfg), str(root / "state"))


def host_key(root) -> str:
    cfg = (root / "etc/coreseal/coreseal.toml").read_text()
    return cfg.split('host_key_id = "')[1].split('"')[0]


def capture(root, data=b"\x7fELF dump with CORESEAL-KMIP-MARKER" * 5000):
    return capture_as(root, "kmipprog", data, time=int(time.time()))


def events(root, type_):
    out = run(root, "events", "--json", "--type", type_).text
    return [json.loads(ln) for ln in out.splitlines()]


def dumps(root):
    return sorted(os.listdir(root / "var/lib/coreseal/dumps"))


def test_setup_creates_named_active_host_key(kmip_root, servers):
    key_id = host_key(kmip_root)
    assert key_id.startswith("coreseal:kmip/test/")
    p = provider_for(kmip_root)
    try:
        uid = key_id.rsplit("/", 1)[1]
        _, attrs = p._call(
            lambda c: c.get_attributes(uid, ["State", "Name"]), read=True
        )
    finally:
        p.close()
    values = {a.attribute_name.value: str(a.attribute_value) for a in attrs}
    assert "ACTIVE" in values["State"]
    assert "coreseal host" in values["Name"]
    cfg = (kmip_root / "etc/coreseal/coreseal.toml").read_text()
    assert servers[0].address in cfg and servers[1].address in cfg
    # No key bytes in the config, the events, or anywhere under the root.
    key = KeyringCache(resolve(str(kmip_root))).get(key_id).secret.reveal()
    for f in files_under(kmip_root):
        with open(f, "rb") as fh:
            data = fh.read()
        assert key not in data and key.hex().encode() not in data, f


def test_capture_forget_sync_extract(kmip_root, tmp_path):
    assert capture(kmip_root).code == 0
    (ev,) = events(kmip_root, "dump-sealed")
    assert ev["key_id"] == host_key(kmip_root)
    assert run(kmip_root, "keys", "forget").code == 0
    r = run(kmip_root, "keys", "sync", "--json")
    assert r.code == 0, r.err
    result = json.loads(r.text)
    assert result["loaded"] == [host_key(kmip_root)]
    out = tmp_path / "core"
    dump = kmip_root / "var/lib/coreseal/dumps" / ev["file"]
    assert run(kmip_root, "envelope", "extract", dump, out).code == 0
    assert out.read_bytes().startswith(b"\x7fELF dump")


@pytest.mark.kernel
def test_real_crash_sealed_under_kmip_host_key(kmip_root, tmp_path):
    exe = tmp_path / "crasher"
    subprocess.run(["gcc", "-g", "-O0", "-o", exe, CRASH_C], check=True)
    with installed_handler(kmip_root):
        assert crash(exe).wait(timeout=60) == -signal.SIGSEGV
        (ev,) = wait_for(kmip_root, "dump-sealed", 1)
    assert ev["key_id"] == host_key(kmip_root) and ev["name"] == "crasher"
    run(kmip_root, "keys", "forget")
    assert run(kmip_root, "keys", "sync").code == 0
    out = tmp_path / "core"
    dump = kmip_root / "var/lib/coreseal/dumps" / ev["file"]
    assert run(kmip_root, "envelope", "extract", dump, out).code == 0
    assert out.read_bytes()[:4] == b"\x7fELF"


def test_dropped_connection_retried_for_reads_only(kmip_root, servers):
    p = provider_for(kmip_root)
    try:
        key_id = host_key(kmip_root)
        assert p.fetch(key_id).can_seal  # connected to the first server
        servers[0].stop()
        assert p.fetch(key_id).can_seal  # reopened, through the second
        servers[1].stop()
        servers[0].start()
        with pytest.raises(ProviderUnreachable, match="not retried"):
            p.create_key("coreseal host never", KIND_HOST)
    finally:
        p.close()


def test_bundle_opens_with_the_key_server_stopped(kmip_root, servers, tmp_path):
    assert capture(kmip_root).code == 0
    pw = tmp_path / "pw"
    pw.write_text("pw for support\n")
    r = run(kmip_root, "bundle", "collect", "-o", tmp_path, "--password-file", pw)
    assert r.code == 0, r.err
    bundle = r.text.strip()
    for s in servers:
        s.stop()
    run(kmip_root, "keys", "forget")
    fresh = tmp_path / "fresh"
    dest = tmp_path / "dest"
    dest.mkdir()
    assert run(fresh, "bundle", "extract", bundle, dest).code == 0
    d = dest / os.path.basename(bundle)[: -len(".tgz")]
    (dump,) = (d / "dumps").iterdir()
    r = open_with_keyfile(fresh, d, dump, pw, tmp_path / "core")
    assert r.code == 0, r.err
    assert (tmp_path / "core").read_bytes().startswith(b"\x7fELF dump")


def test_server_down_with_full_cache_still_seals(kmip_root, servers):
    for s in servers:
        s.stop()
    t0 = time.monotonic()
    assert capture(kmip_root).code == 0
    assert time.monotonic() - t0 < 10
    assert len(dumps(kmip_root)) == 1


def test_server_down_with_empty_cache_discards(kmip_root, servers):
    for s in servers:
        s.stop()
    assert run(kmip_root, "keys", "forget").code == 0
    assert capture(kmip_root).code == 1
    assert dumps(kmip_root) == []
    assert events(kmip_root, "dump-discarded")
    assert not [f for f in files_under(kmip_root) if f.endswith(".cse")]
    r = run(kmip_root, "keys", "sync")
    assert r.code == EXIT_KEY and "no KMIP server of cluster test answered" in r.err
    assert "Traceback" not in r.err
    (m,) = [
        json.loads(ln)
        for ln in run(kmip_root, "keys", "missing", "--json").text.splitlines()
    ]
    assert m["reason"] == "unreachable" and m["what"] == "host key"
    assert events(kmip_root, "provider-unreachable")


def test_second_server_takes_over(kmip_root, servers, tmp_path):
    assert capture(kmip_root).code == 0
    servers[0].stop()
    assert run(kmip_root, "keys", "forget").code == 0
    r = run(kmip_root, "keys", "sync")
    assert r.code == 0, r.err
    (d,) = dumps(kmip_root)
    out = tmp_path / "o"
    assert (
        run(
            kmip_root,
            "envelope",
            "extract",
            kmip_root / "var/lib/coreseal/dumps" / d,
            out,
        ).code
        == 0
    )


def test_revoked_host_key_opens_old_dumps_seals_nothing(kmip_root, tmp_path):
    assert capture(kmip_root).code == 0
    old = host_key(kmip_root)
    p = provider_for(kmip_root)
    try:
        p.revoke(old)
    finally:
        p.close()
    r = run(kmip_root, "keys", "sync")
    assert r.code == 0 and "deactivated" in r.err
    (m,) = [
        json.loads(ln)
        for ln in run(kmip_root, "keys", "missing", "--json").text.splitlines()
    ]
    assert m["key_id"] == old and m["reason"] == "deactivated"
    r = capture(kmip_root)
    assert r.code == 1 and "revoked or deactivated" in r.err
    src = tmp_path / "f"
    src.write_bytes(b"x" * 1000)
    r = run(kmip_root, "envelope", "seal", src, tmp_path / "f.cse")
    assert_one_error_line(r, EXIT_KEY, "revoked or deactivated")
    (d,) = dumps(kmip_root)
    assert (
        run(
            kmip_root,
            "envelope",
            "extract",
            kmip_root / "var/lib/coreseal/dumps" / d,
            tmp_path / "old",
        ).code
        == 0
    )
    r = run(kmip_root, "keys", "rotate-host-key")
    assert r.code == 0, r.err
    new = host_key(kmip_root)
    assert new != old
    assert capture(kmip_root).code == 0
    assert [e["key_id"] for e in events(kmip_root, "dump-sealed")] == [old, new]
    assert events(kmip_root, "host-key-rotated")[0]["old_key_id"] == old
    # Both keys come back after a reboot: the old one opens its dump still.
    run(kmip_root, "keys", "forget")
    assert run(kmip_root, "keys", "sync").code == 0
    assert run(kmip_root, "keys", "missing", "--json").text == ""


def test_destroyed_key_is_reported(kmip_root, tmp_path):
    assert capture(kmip_root).code == 0
    old = host_key(kmip_root)
    assert run(kmip_root, "keys", "sync").code == 0  # seen on the server
    assert run(kmip_root, "keys", "rotate-host-key").code == 0
    p = provider_for(kmip_root)
    try:
        uid = old.rsplit("/", 1)[1]
        p.revoke(old)
        p._call(lambda c: c.destroy(uid), read=False)
    finally:
        p.close()
    run(kmip_root, "keys", "forget")
    r = run(kmip_root, "keys", "sync")
    assert r.code == EXIT_KEY
    assert "incident key file or a backup" in r.err
    rows = [
        json.loads(ln)
        for ln in run(kmip_root, "keys", "missing", "--json").text.splitlines()
    ]
    assert {(r["key_id"], r["reason"]) for r in rows} == {(old, "destroyed")}
    (d,) = dumps(kmip_root)
    r = run(
        kmip_root,
        "envelope",
        "extract",
        kmip_root / "var/lib/coreseal/dumps" / d,
        tmp_path / "x",
    )
    assert_one_error_line(r, EXIT_KEY, "not in the key cache")


def test_permission_denied_for_another_client(kmip_root, pki):
    """The server's default policy lets only a key's owner use it."""
    cfg_path = kmip_root / "etc/coreseal/coreseal.toml"
    cert, key = pki["ca"].issue("another-client")
    cfg_path.write_text(
        cfg_path.read_text().replace(pki["cert"], cert).replace(pki["key"], key)
    )
    run(kmip_root, "keys", "forget")
    r = run(kmip_root, "keys", "sync")
    assert r.code == EXIT_KEY and "permission denied" in r.err
    (m,) = [
        json.loads(ln)
        for ln in run(kmip_root, "keys", "missing", "--json").text.splitlines()
    ]
    assert m["reason"] == "permission-denied"
    (ev,) = events(kmip_root, "key-missing")
    assert ev["reason"] == "permission-denied"


def test_unknown_and_foreign_key_ids(kmip_root):
    ddir = kmip_root / "var/lib/coreseal/dumps"
    for name, key_id in [
        ("unknown", "coreseal:kmip/test/99999"),
        ("other-cluster", "coreseal:kmip/elsewhere/1"),
        ("native", "coreseal:native/abcd1234/host-1"),
    ]:
        key = WrappingKey(key_id, KIND_HOST, Secret(os.urandom(32)))
        with open(ddir / f"core.{name}.1.cse", "wb") as f:
            seal_stream(io.BytesIO(b"data"), f, [key])
    r = run(kmip_root, "keys", "sync", "--json")
    assert r.code == EXIT_KEY
    reasons = {m["key_id"]: m["reason"] for m in json.loads(r.text)["missing"]}
    assert reasons == {
        "coreseal:kmip/test/99999": "not-found",
        "coreseal:kmip/elsewhere/1": "another-provider",
        "coreseal:native/abcd1234/host-1": "another-provider",
    }


def test_custom_key_with_same_id_detected(kmip_root, tmp_path):
    assert capture(kmip_root).code == 0
    key_id = host_key(kmip_root)
    KeyringCache(resolve(str(kmip_root))).put(
        WrappingKey(key_id, KIND_HOST, Secret(os.urandom(32)))
    )
    (d,) = dumps(kmip_root)
    dump = kmip_root / "var/lib/coreseal/dumps" / d
    r = run(kmip_root, "envelope", "extract", dump, tmp_path / "x")
    assert_one_error_line(r, EXIT_KEY, "different key")
    r = run(kmip_root, "keys", "sync")
    assert r.code == 0 and "different key" in r.err
    assert run(kmip_root, "envelope", "extract", dump, tmp_path / "x").code == 0


def test_vm_keys_on_kmip_and_native(kmip_root, root_factory=None):
    r = run(kmip_root, "keys", "vm-key", "web")
    assert_one_error_line(r, EXIT_KEY, "no VM key")
    r = run(kmip_root, "keys", "vm-key", "--create", "--json", "web")
    assert r.code == 0, r.err
    row = json.loads(r.text)
    assert row["key_id"].startswith("coreseal:kmip/test/") and row["cache"] == "cached"
    run(kmip_root, "keys", "forget")
    assert run(kmip_root, "keys", "sync").code == 0
    again = json.loads(run(kmip_root, "keys", "vm-key", "--json", "web").text)
    assert again == row


def test_native_vm_key(sealed_root):
    r = run(sealed_root, "keys", "vm-key", "--create", "--json", "db-1")
    row = json.loads(r.text)
    assert row["key_id"].endswith("/vm-db-1-1") and row["cache"] == "cached"
    assert run(sealed_root, "keys", "vm-key", "bad/name").code == 2


@pytest.fixture
def silent_server():
    """Accepts TCP connections and never says a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns, stop = [], threading.Event()

    def loop():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


def test_setup_failures_are_one_clear_line(root, pki, servers, silent_server):
    dead = f"127.0.0.1:{free_port()}"
    r = run(root, *setup_args(pki, dead))
    assert_one_error_line(r, EXIT_KEY, "Connection refused")
    t0 = time.monotonic()
    r = run(root, *setup_args(pki, silent_server, timeout=1))
    assert_one_error_line(r, EXIT_KEY, "no answer within 1s")
    assert time.monotonic() - t0 < 8
    other = CA(pki["dir"], "other CA")
    r = run(root, *setup_args(pki, servers[0], ca=other.path))
    assert_one_error_line(r, EXIT_KEY, "certificate not trusted")
    cert, key = other.issue("stranger")
    r = run(root, *setup_args(pki, servers[0], cert=cert, key=key))
    assert_one_error_line(r, EXIT_KEY, "TLS handshake failed")
    cert, key = pki["ca"].issue("no-eku", usage=[])
    r = run(root, *setup_args(pki, servers[0], cert=cert, key=key))
    assert r.code in (EXIT_KEY, EXIT_FAILURE) and "Traceback" not in r.err
    assert_one_error_line(r, r.code, "")
    assert not (root / "etc/coreseal/coreseal.toml").exists()


def test_sync_round_trips_scale_with_keys_not_dumps(kmip_root):
    """50 dumps sharing 5 keys: a get and a state query per key, no more."""
    p = provider_for(kmip_root)
    try:
        keys = [p.create_key(f"coreseal host bench {i}", KIND_HOST) for i in range(5)]
    finally:
        p.close()
    ddir = kmip_root / "var/lib/coreseal/dumps"
    for i in range(50):
        with open(ddir / f"core.b.{i}.cse", "wb") as f:
            seal_stream(io.BytesIO(b"x" * 100), f, [keys[i % 5]])
    r = run(kmip_root, "keys", "sync", "--json")
    result = json.loads(r.text)
    assert len(result["loaded"]) == 6  # five plus the host key
    assert result["round_trips"] == 2 * 6


def test_vm_key_stays_a_vm_key_after_sync(kmip_root):
    row = json.loads(run(kmip_root, "keys", "vm-key", "--create", "--json", "web").text)
    run(kmip_root, "keys", "forget")
    assert run(kmip_root, "keys", "sync").code == 0
    kinds = {
        json.loads(ln)["key_id"]: json.loads(ln)["key_kind"]
        for ln in run(kmip_root, "keys", "list", "--json").text.splitlines()
    }
    assert kinds[row["key_id"]] == "vm"
    assert kinds[host_key(kmip_root)] == "host"
    r = run(kmip_root, "capture", "--type", "vm", "--vm", "web", stdin=b"vm" * 1000)
    assert r.code == 0, r.err
    r = run(kmip_root, "keys", "rotate-host-key", "--rewrap")
    assert r.code == 0 and "moved" not in r.text  # the VM dump keeps its key


def test_bad_kmip_settings_are_usage_or_config_errors(root, pki, servers):
    for args in (["--kmip-cluster", "a b"], ["--kmip-timeout", "nan"]):
        r = run(root, *setup_args(pki, servers[0]), *args)
        assert_one_error_line(r, 2)
    r = run(root, *setup_args(pki, "127.0.0.1:٤٨٦١٥"))
    assert_one_error_line(r, 2, "HOST:PORT")
    r = run(root, *setup_args(pki, "[::1]:5696"))
    assert_one_error_line(r, 2, "IPv6")
    r = run(root, *setup_args(pki, servers[0], cert=pki["key"], key=pki["cert"]))
    assert_one_error_line(r, 1, "cannot load the KMIP client certificate")
    assert run(root, *setup_args(pki, servers[0])).code == 0
    import tomllib

    import tomli_w

    cfg_path = root / "etc/coreseal/coreseal.toml"
    good = cfg_path.read_text()
    for key, value in (("servers", [48615]), ("timeout", 0), ("cert", 3)):
        cfg = tomllib.loads(good)
        cfg["kmip"][key] = value
        cfg_path.write_text(tomli_w.dumps(cfg))
        r = run(root, "keys", "sync")
        assert_one_error_line(r, 1, "[kmip] section")
    cfg_path.write_text(good)


def test_stalled_servers_fail_fast_after_one_timeout(kmip_root, servers):
    import tomllib

    cfg = tomllib.loads((kmip_root / "etc/coreseal/coreseal.toml").read_text())
    cfg["kmip"]["timeout"] = 1.0
    p = KmipProvider(KmipSettings.from_config(cfg), str(kmip_root / "st"))
    key_id = host_key(kmip_root)
    try:
        assert p.fetch(key_id).can_seal  # connected
        for s in servers:
            os.kill(s.proc.pid, signal.SIGSTOP)  # accept, then never answer
        t0 = time.monotonic()
        with pytest.raises(ProviderUnreachable):
            p.fetch(key_id)
        assert time.monotonic() - t0 < 8  # one timeout per server, no more
        t0 = time.monotonic()
        with pytest.raises(ProviderUnreachable):
            p.fetch(key_id)
        assert time.monotonic() - t0 < 0.5  # and then at once
    finally:
        for s in servers:
            os.kill(s.proc.pid, signal.SIGCONT)
        p.close()


def test_changing_the_cluster_name_warns(kmip_root, pki, servers):
    args = setup_args(pki, *servers)
    args[args.index("test")] = "renamed"
    r = run(kmip_root, *args)
    assert r.code == 0, r.err
    assert "name KMIP cluster test" in r.err and "--kmip-cluster test" in r.err
