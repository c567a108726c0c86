"""Making keys for this host: rotating the host key, VM keys of workloads.

New keys are made on the configured provider, loaded into the cache and
recorded in the config; old host keys stay listed so ``keys sync`` keeps
fetching them for the dumps they sealed.
"""

from . import config, events
from .errors import KeyUnavailable, UsageError
from .hostkeys import cache_for, load_provider
from .paths import Paths
from .policy import VM_NAME
from .wrapkey import KIND_HOST, KIND_VM


def _make(provider, cfg_kind: str, stem: str, label: str, kind: int):
    if cfg_kind == "native":
        key = provider.create_key(provider.next_name(stem), kind)
        return key
    from .capture.metadata import hostname

    return provider.create_key(
        f"coreseal {label} host {hostname()} {events.now_iso()}", kind
    )


def _finish(paths: Paths, provider, cfg_kind: str) -> None:
    if cfg_kind == "native":
        provider.save(paths)
    elif hasattr(provider, "close"):
        provider.close()


def rotate_host_key(paths: Paths) -> tuple[str, str]:
    cfg = config.load(paths)
    config.require_sealed(cfg)
    kind = cfg["provider"]["type"]
    provider = load_provider(paths, cfg)
    try:
        key = _make(provider, kind, "host", "host", KIND_HOST)
    finally:
        _finish(paths, provider, kind)
    old = cfg["keys"]["host_key_id"]
    previous = cfg["keys"].setdefault("previous_host_keys", [])
    if old and old not in previous:
        previous.append(old)
    config.set_host_key(cfg, key)
    config.save(paths, cfg)
    cache_for(paths, cfg).put(key)
    events.record(paths, "host-key-rotated", old_key_id=old, key_id=key.key_id)
    return old, key.key_id


def vm_key(paths: Paths, name: str, create: bool) -> dict:
    if not VM_NAME.fullmatch(name):
        raise UsageError("a workload name is 1 to 64 letters, digits, '.', '_' or '-'")
    cfg = config.load(paths)
    config.require_sealed(cfg)
    vm_keys = cfg.setdefault("vm_keys", {})
    cache = cache_for(paths, cfg)
    if name not in vm_keys:
        if not create:
            raise KeyUnavailable(
                f"workload {name} has no VM key",
                hint=f"coreseal keys vm-key --create {name}",
            )
        kind = cfg["provider"]["type"]
        provider = load_provider(paths, cfg)
        try:
            key = _make(provider, kind, f"vm-{name}", f"vm {name}", KIND_VM)
        finally:
            _finish(paths, provider, kind)
        vm_keys[name] = key.key_id
        config.save(paths, cfg)
        cache.put(key)
    key_id = vm_keys[name]
    entry = cache.entry(key_id)
    state = "missing" if entry is None else "cached" if entry.can_seal else "open-only"
    return {"vm": name, "key_id": key_id, "cache": state}


def rewrap_dumps(paths: Paths, new_key_id: str, retired: list[str]) -> dict:
    """Moves every dump sealed under a host key to ``new_key_id``, best
    effort; VM-key dumps keep their key. Returns a per-dump report and which
    of ``retired`` no dump needs any more."""
    from .dumps import list_dumps
    from .errors import CoresealError, KeyUnavailable
    from .rekey import recrypt

    rows = []
    for d in list_dumps(paths):
        keys = d.get("keys", [])
        if not d.get("sealed"):
            rows.append(
                {
                    "file": d["file"],
                    "result": "corrupted",
                    "message": d.get("error", "not an envelope"),
                }
            )
            continue
        if not any(k["key_kind"] == "host" for k in keys):
            continue
        if [k["key_id"] for k in keys] == [new_key_id]:
            rows.append({"file": d["file"], "result": "already"})
            continue
        try:
            recrypt(
                paths,
                d["path"],
                None,
                new_key_id,
                deep=False,
                offset=d.get("offset", 0),
            )
            rows.append({"file": d["file"], "result": "moved"})
        except KeyUnavailable as e:
            rows.append({"file": d["file"], "result": "key-missing", "message": str(e)})
        except CoresealError as e:
            rows.append({"file": d["file"], "result": "corrupted", "message": str(e)})
        except OSError as e:
            rows.append(
                {"file": d["file"], "result": "failed", "message": e.strerror or str(e)}
            )
    still = {k["key_id"] for d in list_dumps(paths) for k in d.get("keys", [])}
    return {
        "dumps": rows,
        "retirable": [k for k in retired if k not in still],
        "still_needed": [k for k in retired if k in still],
    }
