"""Which keys this host needs, where they come from, and whether its cache
holds them.

This is where keys meet dumps: the host key and the VM keys from the config,
plus the key of every sealed dump on disk. The outcome of the last sync is
kept per key (IDs and reasons only, never key bytes) so that ``keys
missing`` can say why a key is missing without asking the provider again.
"""

import hmac
import json
import os

from . import config, events
from .dumps import list_dumps
from .errors import CoresealError, NotSetUp
from .fsutil import write_private
from .keys.cache import open_cache
from .keys.provider import FetchedKey, ForeignKey, KeyDestroyed, KeyNotFound
from .paths import Paths


def load_provider(paths: Paths, cfg: dict):
    """The provider the config names, for creating keys."""
    kind = cfg["provider"]["type"]
    if kind == "native":
        from .keys.native import NativeProvider

        return NativeProvider.load(paths)
    if kind == "kmip":
        from .keys.kmip import KmipProvider, KmipSettings

        return KmipProvider(KmipSettings.from_config(cfg), paths.state)
    raise NotSetUp(f"unknown key provider {kind!r} in the config")


class Providers:
    """Every provider this host can ask, so a dump sealed under a key of the
    previous provider still finds it; opened lazily, closed at the end."""

    def __init__(self, paths: Paths, cfg: dict):
        self.paths, self.cfg = paths, cfg
        self._open: dict = {}

    def _get(self, kind: str):
        if kind not in self._open:
            try:
                self._open[kind] = load_provider(
                    self.paths, {**self.cfg, "provider": {"type": kind}}
                )
            except CoresealError:
                if kind == self.cfg["provider"]["type"]:
                    raise  # the configured provider is broken: say so, once
                self._open[kind] = None
        return self._open[kind]

    def fetch(self, key_id: str) -> FetchedKey:
        for kind, prefix in (
            ("native", "coreseal:native/"),
            ("kmip", "coreseal:kmip/"),
        ):
            if key_id.startswith(prefix):
                provider = self._get(kind)
                if provider is None:
                    raise ForeignKey(f"no {kind} provider is configured on this host")
                return provider.fetch(key_id)
        raise ForeignKey("the key belongs to an unknown provider")

    def round_trips(self) -> int:
        return sum(getattr(p, "round_trips", 0) for p in self._open.values() if p)

    def close(self) -> None:
        for p in self._open.values():
            if p is not None and hasattr(p, "close"):
                p.close()


def cache_for(paths: Paths, cfg: dict | None = None):
    cfg = cfg or config.load(paths)
    return open_cache(paths, cfg["cache"]["backend"])


def _status_path(paths: Paths) -> str:
    return os.path.join(paths.state, "key-status.json")


def load_status(paths: Paths) -> dict:
    try:
        with open(_status_path(paths)) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def needed_keys(paths: Paths, cfg: dict) -> dict[str, list[str]]:
    """key ID -> the dump files that need it (none for config keys)."""
    need: dict[str, list[str]] = {}
    for key_id in config_keys(cfg):
        need.setdefault(key_id, [])
    for d in list_dumps(paths):
        for k in d.get("keys", []):
            need.setdefault(k["key_id"], []).append(d["file"])
    return need


def config_keys(cfg: dict) -> list[str]:
    keys = [cfg["keys"]["host_key_id"]] if cfg["keys"]["host_key_id"] else []
    keys += list(cfg["keys"].get("previous_host_keys", []))
    keys += list(cfg.get("vm_keys", {}).values())
    return list(dict.fromkeys(keys))


def missing(paths: Paths) -> list[dict]:
    """Keys this host needs but cannot use from its cache, and why."""
    cfg = config.load(paths)
    config.require_sealed(cfg)
    cache = cache_for(paths, cfg)
    status = load_status(paths)
    out = []

    def reason_for(key_id: str) -> tuple[str, str]:
        s = status.get(key_id)
        if s and s.get("reason"):
            return s["reason"], s["message"]
        return "not-cached", "not in the key cache"

    host = cfg["keys"]["host_key_id"]
    if host:
        entry = cache.entry(host)
        if entry is None:
            out.append(
                {
                    "file": None,
                    "what": "host key",
                    "key_id": host,
                    **_pair(reason_for(host)),
                }
            )
        elif not config.host_key_matches(cfg, entry.key):
            out.append(
                {
                    "file": None,
                    "what": "host key",
                    "key_id": host,
                    "reason": "mismatch",
                    "message": "the cache holds a different key with this ID",
                }
            )
        elif not entry.can_seal:
            state = status.get(host, {}).get("state", "deactivated")
            out.append(
                {
                    "file": None,
                    "what": "host key",
                    "key_id": host,
                    "reason": state,
                    "message": f"{state}: no new dump is sealed under it",
                }
            )
    for d in list_dumps(paths):
        problems = []
        for k in d.get("keys", []):
            cached = cache.get(k["key_id"])
            if cached is None:
                problems.append((k, reason_for(k["key_id"])))
            elif not hmac.compare_digest(cached.fingerprint.hex(), k["fingerprint"]):
                problems.append(
                    (k, ("mismatch", "the cache holds a different key with this ID"))
                )
            else:
                break
        else:
            for k, pair in problems:
                out.append(
                    {
                        "file": d["file"],
                        "what": "dump",
                        "key_id": k["key_id"],
                        **_pair(pair),
                    }
                )
    return out


def _pair(pair: tuple[str, str]) -> dict:
    return {"reason": pair[0], "message": pair[1]}


def sync(paths: Paths) -> dict:
    """Loads every needed key from its provider into the cache."""
    cfg = config.load(paths)
    config.require_sealed(cfg)
    providers = Providers(paths, cfg)
    cache = cache_for(paths, cfg)
    status = load_status(paths)
    loaded, replaced, open_only, not_found = [], [], [], []
    try:
        for key_id, files in needed_keys(paths, cfg).items():
            try:
                fetched = providers.fetch(key_id)
            except KeyNotFound as e:
                reason, message = e.reason, str(e)
                if reason == "not-found" and status.get(key_id, {}).get("seen"):
                    # Some servers delete destroyed keys outright; we got
                    # this one before, so it was destroyed or removed.
                    reason = KeyDestroyed.reason
                    message = "no longer on the server (destroyed or deleted)"
                if files and cache.get(key_id) is None:
                    message += (
                        ": its dumps cannot be opened without an incident"
                        " key file or a backup"
                    )
                not_found.append(
                    {
                        "key_id": key_id,
                        "reason": reason,
                        "message": message,
                        "dumps": len(files),
                    }
                )
                status[key_id] = {
                    **status.get(key_id, {}),
                    "reason": reason,
                    "message": message,
                    "time": events.now_iso(),
                }
                events.record(
                    paths,
                    "key-missing",
                    key_id=key_id,
                    reason=reason,
                    message=message,
                    dumps=len(files),
                    during="sync",
                )
                continue
            key = fetched.key
            old = cache.get(key_id)
            if old is not None and old.secret != key.secret:
                replaced.append(key_id)
            cache.put(key, can_seal=fetched.can_seal)
            fp = key.fingerprint.hex()
            if key_id == cfg["keys"]["host_key_id"] and (
                cfg["keys"].get("host_key_fingerprint") != fp
            ):
                # The provider is the truth about its keys.
                config.set_host_key(cfg, key)
                config.save(paths, cfg)
            if not fetched.can_seal:
                open_only.append({"key_id": key_id, "state": fetched.state})
            loaded.append(key_id)
            status[key_id] = {
                "seen": True,
                "state": fetched.state,
                "reason": None,
                "message": None,
                "time": events.now_iso(),
            }
    finally:
        round_trips = providers.round_trips()
        providers.close()
        write_private(_status_path(paths), json.dumps(status, indent=1).encode())
    unreachable = [m for m in not_found if m["reason"] == "unreachable"]
    if unreachable:
        events.record(
            paths,
            "provider-unreachable",
            provider=cfg["provider"]["type"],
            message=unreachable[0]["message"],
            keys=len(unreachable),
        )
    events.record(
        paths,
        "keys-synced",
        loaded=len(loaded),
        replaced=replaced,
        missing=[m["key_id"] for m in not_found],
        open_only=[o["key_id"] for o in open_only],
        cache=cache.backend,
        round_trips=round_trips,
    )
    return {
        "loaded": loaded,
        "replaced": replaced,
        "missing": not_found,
        "open_only": open_only,
        "cache": cache.backend,
        "round_trips": round_trips,
    }
