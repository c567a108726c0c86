"""The host's configuration file (TOML), with defaults for what it omits."""

import copy
import tomllib

from .errors import CoresealError, NotSetUp
from .paths import Paths

DEFAULTS = {
    "sealed_mode": {"enabled": False},
    "provider": {"type": "native"},
    "keys": {"host_key_id": "", "policy": "per-vm"},
    "cache": {"backend": "auto"},
    "capture": {"threads": 0},  # sealing workers; 0: one per core
    "storage": {
        # Zero means no limit, as in coredump.conf.
        "max_dump_size": 0,
        "on_oversize": "truncate",
        "max_use": 0,
        "keep_free": 0,
        "max_count": 0,
    },
}


def load(paths: Paths) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    try:
        with open(paths.config, "rb") as f:
            found = tomllib.load(f)
    except FileNotFoundError:
        return cfg
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CoresealError(f"failed to read {paths.config}: {e}") from None
    for section, values in found.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    _check_storage(paths, cfg["storage"])
    _check_keys(paths, cfg)
    threads = cfg["capture"].get("threads", 0)
    if type(threads) is not int or not 0 <= threads <= 256:
        raise CoresealError(f"{paths.config}: [capture] threads must be 0 to 256")
    return cfg


def _check_keys(paths: Paths, cfg: dict) -> None:
    """A mistyped workload rule or policy must not make capture guess."""
    from .policy import POLICIES, VM_NAME

    name_ok = VM_NAME.fullmatch
    if cfg["keys"].get("policy", "per-vm") not in POLICIES:
        raise CoresealError(
            f'{paths.config}: [keys] policy must be "per-vm" or "host-only"'
        )
    rules = cfg.get("workloads", [])
    if not isinstance(rules, list):
        raise CoresealError(f"{paths.config}: workloads must be [[workloads]] tables")
    for rule in rules:
        if not isinstance(rule, dict) or not name_ok(str(rule.get("name", ""))):
            raise CoresealError(
                f"{paths.config}: each [[workloads]] rule needs a "
                "name of letters, digits, '.', '_' or '-'"
            )
        fields = [rule.get(k) for k in ("cgroup", "unit", "exe") if k in rule]
        if not fields or not all(isinstance(v, str) and v for v in fields):
            raise CoresealError(
                f"{paths.config}: workload {rule['name']} needs a "
                "cgroup, unit or exe pattern (a string)"
            )
    vm_keys = cfg.get("vm_keys", {})
    if not isinstance(vm_keys, dict) or not all(
        isinstance(v, str) for v in vm_keys.values()
    ):
        raise CoresealError(f"{paths.config}: [vm_keys] maps names to key IDs")


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
SIZE_KEYS = ("max_dump_size", "max_use", "keep_free")


def parse_size(value) -> int:
    """A byte count: an integer, or a string such as "512M" or "2G"."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        if value < 0:
            raise ValueError
        return value
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("B").removesuffix("I")
        unit = text[-1:] if text[-1:] in _UNITS else ""
        number = text[: len(text) - len(unit)]
        if number.isascii() and number.isdigit():
            return int(number) * _UNITS[unit]
    raise ValueError


def _check_storage(paths: Paths, storage: dict) -> None:
    """Refuses values that would make capture delete or drop dumps by
    mistake (a negative count, a size it cannot read)."""
    where = f"{paths.config}: [storage]"
    for key in SIZE_KEYS:
        try:
            storage[key] = parse_size(storage[key])
        except (ValueError, TypeError):
            raise CoresealError(
                f"{where} {key} must be a byte count of 0 or more "
                '(like 1048576 or "2G")'
            ) from None
    count = storage["max_count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise CoresealError(f"{where} max_count must be a whole number of 0 or more")
    if storage["on_oversize"] not in ("truncate", "drop"):
        raise CoresealError(f'{where} on_oversize must be "truncate" or "drop"')


def host_key_matches(cfg: dict, key) -> bool:
    """Whether ``key`` is the host key the provider gave (by fingerprint; a
    config from before fingerprints were recorded trusts the cache)."""
    import hmac

    expected = cfg["keys"].get("host_key_fingerprint", "")
    return not expected or hmac.compare_digest(expected, key.fingerprint.hex())


def set_host_key(cfg: dict, key) -> None:
    cfg["keys"]["host_key_id"] = key.key_id
    cfg["keys"]["host_key_fingerprint"] = key.fingerprint.hex()


def require_sealed(cfg: dict) -> None:
    if not cfg["sealed_mode"]["enabled"] or not cfg["keys"]["host_key_id"]:
        raise NotSetUp("this host is not in sealed mode", hint="run 'coreseal setup'")


def save(paths: Paths, cfg: dict) -> None:
    import tomli_w

    from .fsutil import write_private

    write_private(paths.config, tomli_w.dumps(cfg).encode())
