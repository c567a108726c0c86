"""Which wrapping key seals a dump (DESIGN.md, "Dump types and keys").

``per-vm`` (the default): a VM dump, or a process dump whose process matches
a workload rule, gets the VM key of its workload; everything else the host
key. ``host-only``: every dump gets the host key. A VM dump never falls back
to the host key under ``per-vm``: without its VM key it is not sealed.
"""

import fnmatch
import re

from .config import host_key_matches
from .envelope import constants as c
from .errors import KeyMismatch, KeyUnavailable, NotSetUp
from .wrapkey import WrappingKey

POLICIES = ("per-vm", "host-only")
VM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def match_workload(cfg: dict, meta: dict) -> str | None:
    """The first ``[[workloads]]`` rule whose every given field matches.

    ``cgroup``: a prefix of the process's cgroup path (``/a/b`` matches
    ``/a/b`` and ``/a/b/c``); ``unit``: a component of that path (a systemd
    unit such as ``web.service``); ``exe``: a shell pattern on the
    executable's path."""
    path = str(meta.get("cgroup") or "").split(":", 2)[-1]
    exe = str(meta.get("exe") or "")
    for rule in cfg.get("workloads", []):
        tests = []
        if "cgroup" in rule:
            prefix = str(rule["cgroup"]).rstrip("/")
            tests.append(path == prefix or path.startswith(prefix + "/"))
        if "unit" in rule:
            tests.append(str(rule["unit"]) in path.split("/"))
        if "exe" in rule:
            tests.append(fnmatch.fnmatchcase(exe, str(rule["exe"])))
        if tests and all(tests) and rule.get("name"):
            return str(rule["name"])
    return None


def sealing_key(cfg: dict, cache, dump_type: int, workload: str | None) -> WrappingKey:
    """The key to seal under, or KeyUnavailable saying why there is none."""
    policy = cfg["keys"].get("policy", "per-vm")
    if policy not in POLICIES:
        raise NotSetUp(f"unknown key policy {policy!r} (per-vm or host-only)")
    if dump_type == c.DUMP_VM and not workload:
        raise KeyUnavailable("a VM dump needs the name of its workload")
    if workload and policy == "per-vm":
        key_id = cfg.get("vm_keys", {}).get(workload)
        if not key_id:
            raise KeyUnavailable(
                f"workload {workload} has no VM key",
                hint=f"coreseal keys vm-key --create {workload}",
            )
        return _usable(cache, key_id, f"the VM key of workload {workload}")
    key_id = cfg["keys"]["host_key_id"]
    if not cfg["sealed_mode"]["enabled"] or not key_id:
        raise NotSetUp(
            "sealed mode is not set up on this host", hint="run 'coreseal setup'"
        )
    key = _usable(cache, key_id, "the host key")
    if not host_key_matches(cfg, key):
        e = KeyMismatch(
            f"the cached host key {key_id} is not the provider's "
            "(a replaced or custom key under its ID)",
            hint="run 'coreseal keys sync'",
        )
        e.key_id = key_id
        raise e
    return key


def _usable(cache, key_id: str, what: str) -> WrappingKey:
    entry = cache.entry(key_id)
    if entry is None:
        e = KeyUnavailable(
            f"{what} is not in the key cache ({key_id})",
            hint="run 'coreseal keys sync'",
        )
        e.key_id, e.missing = key_id, True
        raise e
    if not entry.can_seal:
        e = KeyUnavailable(
            f"{what} is revoked or deactivated: no new dump is "
            f"sealed under it ({key_id})",
            hint="run 'coreseal keys rotate-host-key'",
        )
        e.key_id = key_id
        raise e
    return entry.key
