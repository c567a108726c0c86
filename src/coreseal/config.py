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
    return cfg


def require_sealed(cfg: dict) -> None:
    if not cfg["sealed_mode"]["enabled"] or not cfg["keys"]["host_key_id"]:
        raise NotSetUp("this host is not in sealed mode", hint="run 'coreseal setup'")


def save(paths: Paths, cfg: dict) -> None:
    import tomli_w

    from .fsutil import write_private

    write_private(paths.config, tomli_w.dumps(cfg).encode())
