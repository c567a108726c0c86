"""Pointing kernel.core_pattern at the handler, and back.

The pattern is limited to 127 bytes, so the kernel runs a short launcher
whose own file names the Python and the root; the previous pattern and
core_pipe_limit are saved and restored.
"""

import json
import os
import sys

from ..errors import CoresealError
from ..fsutil import write_private
from ..paths import Paths

CORE_PATTERN = "/proc/sys/kernel/core_pattern"
CORE_PIPE_LIMIT = "/proc/sys/kernel/core_pipe_limit"
LAUNCHER_DIR = "/usr/local/libexec/coreseal"
ARGS = "%P %u %g %s %t %e"
# The kernel waits for at most this many handlers at once; the handler needs
# the wait to read /proc/PID. systemd-coredump uses the same number.
PIPE_LIMIT = 16
MAX_PATTERN = 127


def launcher_path(paths: Paths) -> str:
    name = "capture" if paths.root == "/" else f"h-{paths.tag}"
    return os.path.join(LAUNCHER_DIR, name)


def pattern_for(paths: Paths) -> str:
    return f"|{launcher_path(paths)} {ARGS}"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().rstrip("\n")


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value + "\n")
    except OSError as e:
        raise CoresealError(
            f"failed to write {path}: {e.strerror}", hint="run as root"
        ) from None


def _launcher_text(paths: Paths) -> str:
    # -I: the kernel's environment is minimal anyway; ignore PYTHON* and the
    # user site so nothing from outside changes what runs as root.
    return (
        f"#!{sys.executable} -I\n"
        "import sys\n"
        "from coreseal.capture.handler import main\n"
        f"sys.exit(main(['--root', {paths.root!r}, *sys.argv[1:]]))\n"
    )


def status(paths: Paths) -> dict:
    saved = _saved(paths)
    current = _read(CORE_PATTERN)
    return {
        "core_pattern": current,
        "core_pipe_limit": int(_read(CORE_PIPE_LIMIT)),
        "installed": current == pattern_for(paths),
        "handler_pattern": pattern_for(paths),
        "saved_core_pattern": saved.get("core_pattern") if saved else None,
        "saved_core_pipe_limit": saved.get("core_pipe_limit") if saved else None,
    }


def _saved(paths: Paths) -> dict | None:
    try:
        with open(paths.handler_state) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def install(paths: Paths) -> dict:
    pattern = pattern_for(paths)
    if len(pattern) > MAX_PATTERN:
        raise CoresealError(f"core_pattern would be {len(pattern)} bytes (max 127)")
    current = _read(CORE_PATTERN)
    if current != pattern:
        # Save only a pattern that is not ours, so installing twice keeps
        # the original to restore.
        write_private(
            paths.handler_state,
            json.dumps(
                {
                    "core_pattern": current,
                    "core_pipe_limit": int(_read(CORE_PIPE_LIMIT)),
                }
            ).encode(),
        )
    os.makedirs(LAUNCHER_DIR, mode=0o755, exist_ok=True)
    launcher = launcher_path(paths)
    tmp = launcher + ".tmp"
    with open(tmp, "w") as f:
        f.write(_launcher_text(paths))
    os.chmod(tmp, 0o755)
    os.replace(tmp, launcher)
    if int(_read(CORE_PIPE_LIMIT)) < PIPE_LIMIT:
        _write(CORE_PIPE_LIMIT, str(PIPE_LIMIT))
    _write(CORE_PATTERN, pattern)
    return status(paths)


def uninstall(paths: Paths) -> dict:
    saved = _saved(paths)
    if saved is None:
        raise CoresealError("the handler is not installed for this root")
    if _read(CORE_PATTERN) == pattern_for(paths):
        _write(CORE_PATTERN, saved["core_pattern"])
        _write(CORE_PIPE_LIMIT, str(saved["core_pipe_limit"]))
    os.unlink(paths.handler_state)
    try:
        os.unlink(launcher_path(paths))
    except FileNotFoundError:
        pass
    return status(paths)
