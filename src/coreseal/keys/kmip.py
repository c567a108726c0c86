"""The KMIP key provider: wrapping keys live on a cluster of KMIP servers.

Key IDs are ``coreseal:kmip/<cluster>/<unique identifier>``, so any host can
tell which cluster to ask. Servers are tried in order, each with a bounded
timeout. A dropped connection is reopened once and a read retried; a create
is never retried blindly, since the first attempt may have made the key.

PyKMIP is imported here only: its import is slow and it logs, and neither
belongs on the capture path (which never talks to a provider).
"""

import logging
import os
import ssl
from dataclasses import dataclass

from ..errors import CoresealError
from ..secret import Secret
from ..wrapkey import KIND_NAMES, WrappingKey
from .provider import (
    ACTIVE,
    FetchedKey,
    ForeignKey,
    KeyDestroyed,
    KeyNotFound,
    PermissionDenied,
    ProviderUnreachable,
)

PREFIX = "coreseal:kmip/"
DEFAULT_TIMEOUT = 5.0

# The client logs connection failures (and, at DEBUG, key material) through
# the root logger; coreseal reports errors itself.
logging.getLogger("kmip").setLevel(logging.CRITICAL + 1)


@dataclass(frozen=True)
class KmipSettings:
    cluster: str
    servers: tuple[tuple[str, int], ...]
    cert: str
    key: str
    ca: str
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_config(cls, cfg: dict) -> "KmipSettings":
        k = cfg.get("kmip")
        try:
            if not isinstance(k, dict):
                raise ValueError("no [kmip] table")
            servers = k["servers"]
            if not isinstance(servers, list) or not servers:
                raise ValueError("servers must be a list of HOST:PORT")
            for name in ("cluster", "cert", "key", "ca"):
                if not isinstance(k[name], str) or not k[name]:
                    raise ValueError(f"{name} must be a string")
            return cls(
                check_cluster(k["cluster"]),
                tuple(parse_server(s) for s in servers),
                k["cert"],
                k["key"],
                k["ca"],
                check_timeout(k.get("timeout", DEFAULT_TIMEOUT)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CoresealError(
                f"the [kmip] section of the config is incomplete or wrong: {e}"
            ) from None

    def to_config(self) -> dict:
        return {
            "cluster": self.cluster,
            "servers": [f"{h}:{p}" for h, p in self.servers],
            "cert": self.cert,
            "key": self.key,
            "ca": self.ca,
            "timeout": self.timeout,
        }


def parse_server(text: str) -> tuple[str, int]:
    if not isinstance(text, str):
        raise ValueError(f"a KMIP server is HOST:PORT, not {text!r}")
    host, sep, port = text.rpartition(":")
    if (
        not sep
        or not host
        or not (port.isascii() and port.isdigit())
        or not (0 < int(port) < 65536)
    ):
        raise ValueError(f"a KMIP server is HOST:PORT, not {text!r}")
    if ":" in host or host.startswith("["):
        # PyKMIP's client opens IPv4 sockets only.
        raise ValueError(f"IPv6 KMIP servers are not supported: {text!r}")
    return host, int(port)


def check_cluster(name: str) -> str:
    """The cluster's name goes into key IDs: printable, no '/'."""
    if not (
        1 <= len(name) <= 64
        and all(0x21 <= ord(c) <= 0x7E for c in name)
        and "/" not in name
    ):
        raise ValueError(
            f"a KMIP cluster name is 1 to 64 printable ASCII "
            f"characters without '/', not {name!r}"
        )
    return name


def check_timeout(value) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (0.1 <= value <= 120)
    ):
        raise ValueError(f"timeout must be 0.1 to 120 seconds, not {value!r}")
    return float(value)


def _connection_errors() -> tuple:
    from kmip.core import exceptions as core_exc
    from kmip.pie import exceptions as pie_exc

    return (
        OSError,  # ssl errors and timeouts among them
        EOFError,
        core_exc.ConnectionClosed,
        core_exc.NetworkingError,
        pie_exc.ClientConnectionFailure,
        pie_exc.ClientConnectionNotOpen,
    )


class KmipProvider:
    name = "kmip"

    def __init__(self, settings: KmipSettings, state_dir: str):
        self.settings = settings
        self._conf = os.path.join(state_dir, "kmip-client.conf")
        self._client = None
        self._dead: ProviderUnreachable | None = None
        self.round_trips = 0

    def __repr__(self) -> str:
        return f"KmipProvider({self.settings.cluster!r})"

    # --- connections ---------------------------------------------------
    def _client_conf(self) -> str:
        # An explicit, empty client config: without one PyKMIP may read
        # ~/.pykmip/pykmip.conf and connect somewhere else.
        if not os.path.exists(self._conf):
            os.makedirs(os.path.dirname(self._conf), mode=0o700, exist_ok=True)
            with open(self._conf, "w"):
                pass
        return self._conf

    def _open(self):
        # Once every server failed, fail fast: a sync of many keys must not
        # wait out every timeout once per key.
        if self._dead is not None:
            raise self._dead
        try:
            return self._open_any()
        except ProviderUnreachable as e:
            self._dead = e
            raise

    def _open_any(self):
        from kmip.pie.client import ProxyKmipClient

        s = self.settings
        for path in (s.cert, s.key, s.ca):
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise CoresealError(f"cannot read the KMIP credential {path}")
        try:
            ssl.create_default_context(cafile=s.ca).load_cert_chain(s.cert, s.key)
        except (ssl.SSLError, OSError, ValueError) as e:
            raise CoresealError(
                f"cannot load the KMIP client certificate and key ({e}): "
                "are --kmip-cert and --kmip-key a matching PEM pair?"
            ) from None
        failures = []
        for host, port in s.servers:
            client = ProxyKmipClient(
                hostname=host,
                port=port,
                cert=s.cert,
                key=s.key,
                ca=s.ca,
                ssl_version="PROTOCOL_TLSv1_2",
                config_file=self._client_conf(),
            )
            client.proxy.timeout = s.timeout
            try:
                client.open()
                return client
            except ssl.SSLCertVerificationError as e:
                failures.append(
                    f"{host}:{port}: certificate not trusted ({e.verify_message})"
                )
            except ssl.SSLError as e:
                failures.append(
                    f"{host}:{port}: TLS handshake failed ({e.reason or e})"
                )
            except TimeoutError:
                failures.append(f"{host}:{port}: no answer within {s.timeout:g}s")
            except OSError as e:
                failures.append(f"{host}:{port}: {e.strerror or e}")
            except Exception as e:  # noqa: BLE001 - PyKMIP raises loosely
                failures.append(f"{host}:{port}: {e}")
        raise ProviderUnreachable(
            f"no KMIP server of cluster {s.cluster} answered: " + "; ".join(failures)
        )

    def close(self) -> None:
        if self._client is None:
            return
        # PyKMIP leaves the socket open when shutdown() fails on a dead peer.
        sock = getattr(self._client.proxy, "socket", None)
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - a dead socket cannot be closed
            pass
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self._client = None

    def _call(self, op, *, read: bool):
        """One operation, with the cluster's failover; the server's refusals
        become KeyNotFound and its kin."""
        from kmip.pie.exceptions import KmipOperationFailure

        try:
            return self._call_once(op, read)
        except KmipOperationFailure as e:
            raise _failure(e) from None

    def _call_once(self, op, read: bool):
        if self._client is None:
            self._client = self._open()
        try:
            self.round_trips += 1
            return op(self._client)
        except _connection_errors() as e:
            self.close()
            if not read:
                raise ProviderUnreachable(
                    f"the connection to the KMIP server failed during a write "
                    f"({e}); not retried, since it may have taken effect"
                ) from None
        self._client = self._open()
        try:
            self.round_trips += 1
            return op(self._client)
        except _connection_errors() as e:
            self.close()
            # Twice in a row: a server that accepts and then stalls or drops.
            # Fail fast for the rest of this run, as for one that refuses.
            what = (
                f"no answer within {self.settings.timeout:g}s"
                if isinstance(e, TimeoutError)
                else f"connection lost ({e})"
            )
            self._dead = ProviderUnreachable(
                f"the KMIP servers of cluster {self.settings.cluster} accept "
                f"connections but fail requests: {what}"
            )
            raise self._dead from None

    def check(self) -> None:
        """Connects to the first server that answers."""
        if self._client is None:
            self._client = self._open()

    # --- keys ------------------------------------------------------------
    def key_id(self, uid: str) -> str:
        return f"{PREFIX}{self.settings.cluster}/{uid}"

    def owns(self, key_id: str) -> bool:
        return key_id.startswith(f"{PREFIX}{self.settings.cluster}/")

    def _uid(self, key_id: str) -> str:
        if not key_id.startswith(PREFIX):
            raise ForeignKey("the key belongs to another provider")
        if not self.owns(key_id):
            raise ForeignKey("the key belongs to another KMIP cluster")
        return key_id[len(self.key_id("")) :]

    def create_key(self, name: str, kind: int) -> WrappingKey:
        from kmip.core import enums

        mask = [
            enums.CryptographicUsageMask.WRAP_KEY,
            enums.CryptographicUsageMask.UNWRAP_KEY,
        ]
        uid = self._call(
            lambda c: c.create(
                enums.CryptographicAlgorithm.AES,
                256,
                name=name,
                cryptographic_usage_mask=mask,
            ),
            read=False,
        )
        try:
            self._call(lambda c: c.activate(uid), read=False)
        except KeyNotFound as e:
            raise type(e)(
                f"key {self.key_id(uid)} was created but not activated: {e}"
            ) from None
        return self.fetch(self.key_id(uid), kind).key

    def fetch(self, key_id: str, kind: int | None = None) -> FetchedKey:
        uid = self._uid(key_id)
        state, named_kind = self._state(uid)
        if state in ("destroyed", "destroyed-compromised"):
            raise KeyDestroyed("destroyed on the server")
        obj = self._call(lambda c: c.get(uid), read=True)
        value = getattr(obj, "value", None)
        if not isinstance(value, bytes) or len(value) != 32:
            raise KeyNotFound("the server's object is not an AES-256 key")
        kind = kind or named_kind
        return FetchedKey(WrappingKey(key_id, kind, Secret(value)), state)

    def _state(self, uid: str) -> tuple[str, int]:
        """The key's state and kind, from its State and Name attributes (a
        get does not return the names)."""
        _, attrs = self._call(
            lambda c: c.get_attributes(uid, ["State", "Name"]), read=True
        )
        state, kind = ACTIVE, None
        for a in attrs:
            if a.attribute_name.value == "State":
                state = a.attribute_value.value.name.lower().replace("_", "-")
            elif a.attribute_name.value == "Name":
                value = getattr(a.attribute_value, "name_value", None)
                text = getattr(value, "value", None) or str(a.attribute_value)
                kind = kind or _kind_from_name([text])
        return state, kind or 1

    def revoke(self, key_id: str) -> None:
        """For tests and admins: the key opens old dumps, seals nothing new."""
        from kmip.core import enums

        uid = self._uid(key_id)
        self._call(
            lambda c: c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid),
            read=False,
        )


def _kind_from_name(names) -> int:
    for n in names or []:
        text = str(n)
        for kind, word in KIND_NAMES.items():
            if text.startswith(f"coreseal {word} "):
                return kind
    return None


def _failure(e) -> KeyNotFound:
    reason = getattr(getattr(e, "reason", None), "name", "")
    if reason == "ITEM_NOT_FOUND":
        return KeyNotFound("not found on the server")
    if reason in ("PERMISSION_DENIED", "AUTHENTICATION_NOT_SUCCESSFUL"):
        return PermissionDenied(
            "permission denied by the server"
            + (
                " (client certificate not accepted)"
                if reason == "AUTHENTICATION_NOT_SUCCESSFUL"
                else ""
            )
        )
    return KeyNotFound(f"the server refused: {getattr(e, 'message', e)}")
