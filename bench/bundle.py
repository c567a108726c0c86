"""Bundle collect and extract, with and without a password, next to
`tar czf` and `tar xzf` of the same dumps, in one run.

Makes a host with about 2 GiB of sealed dumps (random bytes, which do not
compress, like the ciphertext they become), then times each step.

    python bench/bundle.py [--size-mib 2048]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

COSEAL = os.path.join(os.path.dirname(sys.executable), "coreseal")


def timed(cmd, env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=2048)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="coreseal-bundle-bench-", dir="/var/tmp")
    root = os.path.join(work, "root")
    env = {**os.environ, "CORESEAL_ROOT": root}
    try:
        subprocess.run([COSEAL, "setup"], env=env, check=True, capture_output=True)
        per = 256
        for i in range(max(1, args.size_mib // per)):
            with open(os.path.join(work, "in"), "wb") as f:
                for _ in range(per):
                    f.write(os.urandom(1 << 20))
            out = os.path.join(root, f"var/lib/coreseal/dumps/core.bench.{i}.cse")
            subprocess.run(
                [COSEAL, "envelope", "seal", os.path.join(work, "in"), out],
                env=env,
                check=True,
                capture_output=True,
            )
        os.unlink(os.path.join(work, "in"))
        dumps = os.path.join(root, "var/lib/coreseal/dumps")
        size = sum(os.path.getsize(os.path.join(dumps, n)) for n in os.listdir(dumps))
        pw = os.path.join(work, "pw")
        with open(pw, "w") as f:
            f.write("bench password\n")
        rows = {}
        for label, extra in (
            ("collect, no password", []),
            ("collect, password", ["--password-file", pw]),
        ):
            out = os.path.join(work, label.replace(" ", "").replace(",", ""))
            os.mkdir(out)
            rows[label] = timed([COSEAL, "bundle", "collect", "-o", out, *extra], env)
        rows["tar czf"] = timed(
            ["tar", "czf", os.path.join(work, "t.tgz"), "-C", dumps, "."]
        )
        bundle_dir = os.path.join(work, "collectpassword")
        bundle = os.path.join(bundle_dir, os.listdir(bundle_dir)[0])
        dest = os.path.join(work, "x")
        os.mkdir(dest)
        rows["bundle extract"] = timed([COSEAL, "bundle", "extract", bundle, dest], env)
        tdest = os.path.join(work, "tx")
        os.mkdir(tdest)
        rows["tar xzf"] = timed(
            ["tar", "xzf", os.path.join(work, "t.tgz"), "-C", tdest]
        )
        subprocess.run([COSEAL, "keys", "forget"], env=env, capture_output=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = size / 1e6
    print(f"sealed dumps: {size / 2**20:.0f} MiB")
    for label, t in rows.items():
        print(f"{label:24} {t:7.2f} s {mb / t:7.0f} MB/s")
    print(
        f"{'password / no password':24} "
        f"{rows['collect, password'] / rows['collect, no password']:7.2f}x"
    )
    print(
        f"{'collect vs tar czf':24} "
        f"{rows['tar czf'] / rows['collect, password']:7.2f}x faster"
    )
    print(
        f"{'extract vs tar xzf':24} "
        f"{rows['tar xzf'] / rows['bundle extract']:7.2f}x faster"
    )


if __name__ == "__main__":
    main()
