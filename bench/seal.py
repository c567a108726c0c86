"""Seal and extract against zstd and age, measured in one run.

Makes a real core of mixed memory with gcore (default 1200 MiB of process
memory), then runs each tool on the same file and prints wall time, MB/s,
output size and peak RSS, with ratios against the peers. Also times the
capture handler's start. Run with `make bench`; needs root only for the
keyring, which `coreseal setup` uses when it can.

    python bench/seal.py [--size-mib N] [--keep DIR]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
COSEAL = os.path.join(BIN, "coreseal")


def measure(cmd: str, out: str | None = None) -> dict:
    """Runs a shell command; wall time and the peak RSS of its biggest
    process (wait4 reports the maximum over the reaped descendants)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(["bash", "-c", cmd])
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: error: failed: {cmd}")
    return {
        "wall": wall,
        "rss_mib": usage.ru_maxrss / 1024,
        "out_size": os.path.getsize(out) if out else None,
    }


def make_core(work: str, mib: int) -> str:
    exe = os.path.join(work, "memhog")
    subprocess.run(
        ["gcc", "-O2", "-o", exe, os.path.join(HERE, "memhog.c")], check=True
    )
    p = subprocess.Popen([exe, str(mib)], stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    prefix = os.path.join(work, "core")
    subprocess.run(["gcore", "-o", prefix, str(p.pid)], check=True, capture_output=True)
    p.kill()
    p.wait()
    p.stdout.close()
    return f"{prefix}.{p.pid}"


def capture_start(root: str, runs: int = 15) -> dict:
    """Wall time of the kernel-facing launcher sealing an empty dump, and of
    a bare interpreter start for comparison."""
    from coreseal.capture.install import _launcher_text
    from coreseal.paths import resolve

    launcher = os.path.join(root, "launcher")
    with open(launcher, "w") as f:
        f.write(_launcher_text(resolve(root)))
    os.chmod(launcher, 0o755)
    args = [launcher, "999999", "0", "0", "11", str(int(time.time())), "bench"]

    def timed(cmd):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(
                cmd, stdin=subprocess.DEVNULL, check=True, stderr=subprocess.DEVNULL
            )
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return {
        "handler": timed(args),
        "python": timed([sys.executable, "-I", "-c", "pass"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1200)
    ap.add_argument("--keep", help="keep the work directory here")
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="coreseal-bench-", dir="/var/tmp")
    os.makedirs(work, exist_ok=True)
    root = os.path.join(work, "root")
    env = {**os.environ, "CORESEAL_ROOT": root}
    try:
        subprocess.run([COSEAL, "setup"], env=env, check=True, capture_output=True)
        core = make_core(work, args.size_mib)
        size = os.path.getsize(core)
        subprocess.run(
            ["age-keygen", "-o", f"{work}/age.key"], check=True, capture_output=True
        )
        pub = subprocess.run(
            ["age-keygen", "-y", f"{work}/age.key"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        subprocess.run(["cat", core], stdout=subprocess.DEVNULL, check=True)
        w = work
        os.environ["CORESEAL_ROOT"] = root
        rows = {
            "coreseal seal": measure(
                f"{COSEAL} envelope seal {core} {w}/c.cse", f"{w}/c.cse"
            ),
            "zstd -3 -T0": measure(
                f"zstd -q -3 -T0 -c {core} > {w}/c.zst", f"{w}/c.zst"
            ),
            "zstd -3 -T0 | age": measure(
                f"zstd -q -3 -T0 -c {core} | age -r {pub} > {w}/c.zst.age",
                f"{w}/c.zst.age",
            ),
            "age (no compression)": measure(
                f"age -r {pub} {core} > {w}/c.age", f"{w}/c.age"
            ),
            "coreseal extract": measure(
                f"{COSEAL} envelope extract {w}/c.cse {w}/x1", f"{w}/x1"
            ),
            "zstd -d": measure(f"zstd -q -d -c {w}/c.zst > {w}/x2", f"{w}/x2"),
            "age -d": measure(
                f"age -d -i {w}/age.key {w}/c.zst.age > {w}/x3", f"{w}/x3"
            ),
            "age -d (no compression)": measure(
                f"age -d -i {w}/age.key {w}/c.age > {w}/x5", f"{w}/x5"
            ),
            "age -d | zstd -d": measure(
                f"age -d -i {w}/age.key {w}/c.zst.age | zstd -q -d > {w}/x4", f"{w}/x4"
            ),
        }
        subprocess.run(["cmp", core, f"{w}/x1"], check=True)
        start = capture_start(root)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    mb = size / 1e6
    print(f"core: {size / 2**20:.0f} MiB from gcore (zeros, random, text)")
    print(f"{'tool':22} {'wall s':>7} {'MB/s':>7} {'out MiB':>8} {'RSS MiB':>8}")
    for name, r in rows.items():
        print(
            f"{name:22} {r['wall']:7.2f} {mb / r['wall']:7.0f} "
            f"{r['out_size'] / 2**20:8.1f} {r['rss_mib']:8.1f}"
        )
    seal, z, za = rows["coreseal seal"], rows["zstd -3 -T0"], rows["zstd -3 -T0 | age"]
    ext = rows["coreseal extract"]
    ratios = {
        "seal speed vs zstd -3 -T0": z["wall"] / seal["wall"],
        "seal speed vs zstd | age": za["wall"] / seal["wall"],
        "seal size vs zstd": seal["out_size"] / z["out_size"],
        "extract speed vs age -d": rows["age -d"]["wall"] / ext["wall"],
        "extract speed vs age -d (no compr.)": rows["age -d (no compression)"]["wall"]
        / ext["wall"],
        "extract speed vs zstd -d": rows["zstd -d"]["wall"] / ext["wall"],
        "extract speed vs age -d | zstd -d": rows["age -d | zstd -d"]["wall"]
        / ext["wall"],
    }
    print()
    for k, v in ratios.items():
        print(f"{k:36} {v:6.2f}x")
    print(
        f"{'capture start (median of 15)':36} {start['handler'] * 1000:6.0f} ms "
        f"(bare python -I: {start['python'] * 1000:.0f} ms)"
    )
    print(
        json.dumps(
            {"size": size, "rows": rows, "ratios": ratios, "capture_start": start}
        ),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
