"""Running the real CLI in a subprocess, and looking at what it left."""

import os
import subprocess
import sys
from dataclasses import dataclass

COSEAL = os.path.join(os.path.dirname(sys.executable), "coreseal")


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()


def run(root, *args, stdin=None, env=None, timeout=120) -> Result:
    e = {k: v for k, v in os.environ.items() if k != "CORESEAL_ROOT"}
    e.update(env or {})
    cmd = [COSEAL, "--root", str(root), *map(str, args)]
    p = subprocess.run(cmd, input=stdin, capture_output=True, env=e, timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr.decode())


def capture(root, name: str, data: bytes, time: int | str = 1) -> Result:
    """What the kernel's core_pattern pipe does, minus the crash: a dump of
    ``name`` (pid 3999999, signal 11) on the handler's stdin."""
    return run(root, "capture", "3999999", "0", "0", "11", time, name, stdin=data)


def seal_vm(root, src, out, vm: str) -> Result:
    return run(root, "envelope", "seal", "--type", "vm", "--vm", vm, src, out)


def assert_one_error_line(r: Result, code: int, fragment: str = "") -> None:
    """Bad input gets one line in the house voice (and maybe a hint)."""
    assert r.code == code, (r.code, r.err)
    lines = [ln for ln in r.err.splitlines() if not ln.startswith("coreseal: hint:")]
    assert len(lines) == 1, r.err
    assert lines[0].startswith("coreseal: error: "), r.err
    assert "Traceback" not in r.err and "Aborted" not in r.err
    assert fragment in lines[0], (fragment, r.err)


def files_under(root) -> list[str]:
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.join(d, n) for n in names]
    return sorted(out)


def open_with_keyfile(root, directory, dump, password_file, out) -> Result:
    """Opens a dump of an unpacked bundle with its incident key file."""
    return run(
        root,
        "envelope",
        "extract",
        "--keyfile",
        os.path.join(str(directory), "incident-key-file"),
        "--password-file",
        password_file,
        dump,
        out,
    )
