"""KMIP provider timings against a real PyKMIP server on 127.0.0.1.

Reports the time of `coreseal setup --provider kmip`, of `keys sync` for
1,000 sealed dumps sharing 10 keys (with the server round trips it made),
and of a capture sealed under the KMIP host key, next to the same capture
with the native provider.

    python bench/kmip_sync.py
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from coreseal.envelope.seal import seal_stream  # noqa: E402
from coreseal.keys.kmip import KmipProvider, KmipSettings  # noqa: E402
from coreseal.wrapkey import KIND_HOST  # noqa: E402
from kmip_server import KmipServer  # noqa: E402
from pki import CA  # noqa: E402

COSEAL = os.path.join(os.path.dirname(sys.executable), "coreseal")


def timed(root, *args, stdin=None):
    t0 = time.perf_counter()
    p = subprocess.run(
        [COSEAL, "--root", root, *args], input=stdin, capture_output=True
    )
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"bench: error: coreseal {' '.join(args)}: {p.stderr}")
    return dt, p.stdout


def main() -> None:
    work = tempfile.mkdtemp(prefix="coreseal-kmip-bench-")
    ca = CA(work)
    cert, key = ca.issue("bench-client")
    server = KmipServer(work, ca).start()
    root, native = os.path.join(work, "root"), os.path.join(work, "native")
    try:
        t_setup, _ = timed(
            root,
            "setup",
            "--provider",
            "kmip",
            "--kmip-server",
            server.address,
            "--kmip-cert",
            cert,
            "--kmip-key",
            key,
            "--kmip-ca",
            ca.path,
        )
        import tomllib

        with open(os.path.join(root, "etc/coreseal/coreseal.toml"), "rb") as f:
            cfg = tomllib.load(f)
        p = KmipProvider(KmipSettings.from_config(cfg), os.path.join(work, "st"))
        keys = [p.create_key(f"coreseal host bench {i}", KIND_HOST) for i in range(10)]
        p.close()
        ddir = os.path.join(root, "var/lib/coreseal/dumps")
        for i in range(1000):
            with open(os.path.join(ddir, f"core.bench.{i}.cse"), "wb") as f:
                seal_stream(io.BytesIO(b"x" * 64), f, [keys[i % 10]])
        timed(root, "keys", "forget")
        t_sync, out = timed(root, "keys", "sync", "--json")
        result = json.loads(out)
        dump = os.urandom(1 << 20) * 8
        args = ["capture", "3999999", "0", "0", "11", str(int(time.time())), "b"]
        t_cap = min(timed(root, *args, stdin=dump)[0] for _ in range(5))
        timed(native, "setup")
        t_native = min(timed(native, *args, stdin=dump)[0] for _ in range(5))
        timed(native, "keys", "forget")
        timed(root, "keys", "forget")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"setup --provider kmip              {t_setup * 1000:7.0f} ms")
    print(
        f"keys sync, 1000 dumps, 10 keys      {t_sync * 1000:7.0f} ms, "
        f"{result['round_trips']} round trips, {len(result['loaded'])} keys loaded"
    )
    print(
        f"capture of 8 MiB, KMIP host key     {t_cap * 1000:7.0f} ms "
        f"(native: {t_native * 1000:.0f} ms, ratio {t_cap / t_native:.2f})"
    )


if __name__ == "__main__":
    main()
