"""Which keys this host needs, and whether its cache holds them.

This is where keys meet dumps: the host key from the config, plus the key
of every sealed dump on disk.
"""

import hmac

from . import config, events
from .dumps import list_dumps
from .errors import NotSetUp
from .keys.cache import open_cache
from .keys.native import NativeProvider
from .keys.provider import KeyNotFound
from .paths import Paths


def load_provider(paths: Paths, cfg: dict):
    kind = cfg["provider"]["type"]
    if kind == "native":
        return NativeProvider.load(paths)
    raise NotSetUp(f"unknown key provider {kind!r} in the config")


def cache_for(paths: Paths, cfg: dict | None = None):
    cfg = cfg or config.load(paths)
    return open_cache(paths, cfg["cache"]["backend"])


def needed_keys(paths: Paths, cfg: dict) -> dict[str, list[str]]:
    """key ID -> the dump files that need it ('' for the host key itself)."""
    need: dict[str, list[str]] = {}
    if cfg["keys"]["host_key_id"]:
        need.setdefault(cfg["keys"]["host_key_id"], [])
    for d in list_dumps(paths):
        for k in d.get("keys", []):
            need.setdefault(k["key_id"], []).append(d["file"])
    return need


def missing(paths: Paths) -> list[dict]:
    """Dumps (and the host key) whose key the cache lacks or holds wrongly."""
    cfg = config.load(paths)
    cache = cache_for(paths, cfg)
    out = []
    host = cfg["keys"]["host_key_id"]
    if host and cache.get(host) is None:
        out.append(
            {
                "file": None,
                "key_id": host,
                "reason": "not in the key cache",
                "what": "host key",
            }
        )
    for d in list_dumps(paths):
        entries = d.get("keys", [])
        states = []
        for k in entries:
            cached = cache.get(k["key_id"])
            if cached is None:
                states.append((k, "not in the key cache"))
            elif not hmac.compare_digest(cached.fingerprint.hex(), k["fingerprint"]):
                states.append((k, "the cache holds a different key with this ID"))
            else:
                break
        else:
            for k, reason in states:
                out.append(
                    {
                        "file": d["file"],
                        "key_id": k["key_id"],
                        "reason": reason,
                        "what": "dump",
                    }
                )
    return out


def sync(paths: Paths) -> dict:
    """Loads every needed key from the provider into the cache."""
    cfg = config.load(paths)
    config.require_sealed(cfg)
    provider = load_provider(paths, cfg)
    cache = cache_for(paths, cfg)
    loaded, replaced, not_found = [], [], []
    for key_id, files in needed_keys(paths, cfg).items():
        try:
            key = provider.get_key(key_id)
        except KeyNotFound as e:
            not_found.append({"key_id": key_id, "reason": str(e), "dumps": len(files)})
            events.record(
                paths,
                "key-missing",
                key_id=key_id,
                reason=str(e),
                dumps=len(files),
                during="sync",
            )
            continue
        old = cache.get(key_id)
        if old is not None and old.secret != key.secret:
            replaced.append(key_id)
        cache.put(key)
        loaded.append(key_id)
    events.record(
        paths,
        "keys-synced",
        loaded=len(loaded),
        replaced=replaced,
        missing=[m["key_id"] for m in not_found],
        cache=cache.backend,
    )
    return {
        "loaded": loaded,
        "replaced": replaced,
        "missing": not_found,
        "cache": cache.backend,
    }
