"""`make demo`: sealed mode end to end on this machine.

Sets up sealed mode with the native provider under a demo root, installs
the capture handler, crashes a small C program, shows the event and
`describe`, extracts the dump and lets gdb name the crashing function,
checks that no plaintext core is anywhere under the root, and restores
kernel.core_pattern whatever happens.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(os.path.dirname(HERE), ".demo-root")
COSEAL = os.path.join(os.path.dirname(sys.executable), "coreseal")
PATTERN = "/proc/sys/kernel/core_pattern"
PIPE_LIMIT = "/proc/sys/kernel/core_pipe_limit"
MARKER = b"CORESEAL-MARKER-a41c93e0"


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def coreseal(*args: str, show: bool = True) -> str:
    cmd = [COSEAL, "--root", ROOT, *args]
    if show:
        print("$ coreseal " + " ".join(args), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if show and p.stdout:
        print(p.stdout, end="")
    if p.stderr:
        print(p.stderr, end="", file=sys.stderr)
    if p.returncode != 0:
        raise SystemExit(
            f"coreseal: error: demo step failed: coreseal {' '.join(args)}"
        )
    return p.stdout


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def wait_for_dump(timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = coreseal("events", "--json", "--type", "dump-sealed", show=False)
        if out.strip():
            return json.loads(out.splitlines()[-1])
        time.sleep(0.2)
    raise SystemExit("coreseal: error: no sealed dump appeared within a minute")


def plaintext_under(root: str) -> list[str]:
    bad = []
    for d, _, names in os.walk(root):
        for n in names:
            path = os.path.join(d, n)
            with open(path, "rb") as f:
                data = f.read()
            if b"\x7fELF" in data or MARKER in data:
                bad.append(path)
    return bad


def main() -> int:
    if os.geteuid() != 0:
        print(
            "coreseal: error: the demo changes kernel.core_pattern: run it as root",
            file=sys.stderr,
        )
        return 1
    shutil.rmtree(ROOT, ignore_errors=True)
    work = tempfile.mkdtemp(prefix="coreseal-demo-")
    saved = read(PATTERN), read(PIPE_LIMIT)
    summary = []
    try:
        say("1. sealed mode with the built-in native key provider")
        coreseal("setup")
        say("2. the capture handler in kernel.core_pattern")
        coreseal("handler", "install")

        say("3. a program crashes (ulimit -c unlimited)")
        exe = os.path.join(work, "crasher")
        subprocess.run(
            ["gcc", "-g", "-O0", "-o", exe, os.path.join(HERE, "crash.c")], check=True
        )
        p = subprocess.run(
            ["bash", "-c", 'ulimit -c unlimited; exec "$0"', exe], capture_output=True
        )
        print(f"crasher exited with signal {-p.returncode}")
        ev = wait_for_dump()

        say("4. the event and the sealed dump")
        coreseal("events", "--type", "dump-sealed")
        dump = os.path.join(ROOT, "var/lib/coreseal/dumps", ev["file"])
        coreseal("envelope", "describe", dump)

        say("5. an administrator opens it with the host key and runs gdb")
        core = os.path.join(work, "core")
        coreseal("envelope", "extract", dump, core)
        gdb = subprocess.run(
            ["gdb", "-batch", "-ex", "bt", exe, core], capture_output=True, text=True
        )
        # gdb prints the crashing frame once on load and again in bt.
        frames = list(
            dict.fromkeys(ln for ln in gdb.stdout.splitlines() if ln.startswith("#"))
        )
        print("\n".join(frames))
        os.unlink(core)
        named = any("coreseal_crash_here" in f for f in frames)

        say("6. no plaintext anywhere under the root")
        leaks = plaintext_under(ROOT)
        print("none found" if not leaks else "\n".join(leaks))
        summary = [
            ("dump sealed under the host key", ev["key_id"] == host_key()),
            ("gdb names the crashing function", named),
            ("no ELF header or marker under the root", not leaks),
        ]
    finally:
        say("7. kernel.core_pattern restored")
        try:
            coreseal("handler", "uninstall")
        finally:
            with open(PATTERN, "w") as f:
                f.write(saved[0])
            with open(PIPE_LIMIT, "w") as f:
                f.write(saved[1])
            shutil.rmtree(work, ignore_errors=True)
        print(f"core_pattern: {read(PATTERN).strip()}")

    say("summary")
    for what, ok in summary:
        print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    print(f"  state kept under {ROOT}; look around with:")
    print(f"    .venv/bin/coreseal --root {ROOT} list")
    return 0 if summary and all(ok for _, ok in summary) else 1


def host_key() -> str:
    rows = coreseal("keys", "list", "--json", show=False).splitlines()
    return next(json.loads(r)["key_id"] for r in rows if json.loads(r)["host_key"])


if __name__ == "__main__":
    sys.exit(main())
