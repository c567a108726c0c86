"""A real (tiny) VM under QEMU's software emulation, and its memory dumps
taken with the QMP command dump-guest-memory."""

import json
import os
import socket
import subprocess
import time


class QemuVM:
    def __init__(self, directory: str, memory_mib: int = 64):
        self.dir = directory
        self.qmp_path = os.path.join(directory, "qmp.sock")
        self.proc = subprocess.Popen(
            [
                "qemu-system-x86_64",
                "-machine",
                "accel=tcg",
                "-m",
                str(memory_mib),
                "-nodefaults",
                "-display",
                "none",
                "-serial",
                "none",
                "-qmp",
                f"unix:{self.qmp_path},server=on,wait=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not os.path.exists(self.qmp_path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"qemu did not start: {self.proc.stderr.read()}")
            time.sleep(0.05)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(120)
        self.sock.connect(self.qmp_path)
        self.reader = self.sock.makefile("r")
        json.loads(self.reader.readline())  # greeting
        self.command("qmp_capabilities")
        time.sleep(0.5)  # let the firmware run and fill some memory

    def command(self, name: str, **arguments) -> dict:
        msg = {"execute": name, **({"arguments": arguments} if arguments else {})}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = json.loads(self.reader.readline())
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(reply["error"])

    def dump(self, path: str, fmt: str = "elf") -> str:
        self.command(
            "dump-guest-memory", paging=False, protocol=f"file:{path}", format=fmt
        )
        return path

    def close(self) -> None:
        try:
            self.command("quit")
        except (OSError, RuntimeError, ValueError):
            pass
        self.reader.close()
        self.sock.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
