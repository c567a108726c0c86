"""A real PyKMIP server on 127.0.0.1, started and stopped by the tests."""

import os
import signal
import socket
import subprocess
import sys
import time

SUITE = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KmipServer:
    def __init__(
        self, directory: str, ca, name: str = "kmip-server", database: str | None = None
    ):
        """Servers given the same ``database`` serve the same keys, as the
        nodes of a replicated cluster do."""
        self.dir = os.path.join(directory, name)
        os.makedirs(os.path.join(self.dir, "policies"), exist_ok=True)
        self.cert, self.key = ca.issue(name, server=True)
        self.ca = ca
        self.port = free_port()
        self.proc = None
        self.conf = os.path.join(self.dir, "server.conf")
        with open(self.conf, "w") as f:
            f.write(
                "[server]\n"
                "hostname=127.0.0.1\n"
                f"port={self.port}\n"
                f"certificate_path={self.cert}\n"
                f"key_path={self.key}\n"
                f"ca_path={ca.path}\n"
                "auth_suite=TLS1.2\n"
                f"policy_path={os.path.join(self.dir, 'policies')}\n"
                "enable_tls_client_auth=True\n"
                f"tls_cipher_suites={SUITE}\n"
                # DEBUG would log key material.
                "logging_level=INFO\n"
                f"database_path={database or os.path.join(self.dir, 'pykmip.db')}\n"
            )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "KmipServer":
        exe = os.path.join(os.path.dirname(sys.executable), "pykmip-server")
        log = open(os.path.join(self.dir, "server.log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [exe, "-f", self.conf, "-l", os.path.join(self.dir, "pykmip.log")],
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=self.dir,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pykmip-server exited: see {self.dir}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("pykmip-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # SIGINT stops it in under a second; SIGTERM takes about ten.
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
