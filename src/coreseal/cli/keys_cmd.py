"""``coreseal keys``: the key cache."""

import click

from .. import config, hostkeys
from .common import emit_json, get_paths, info, json_option, warn


@click.group()
def keys() -> None:
    """Show, empty and refill the key cache."""


@keys.command("list")
@json_option
def list_keys(as_json: bool) -> None:
    """List the keys in the cache (IDs and fingerprints, never key bytes)."""
    paths = get_paths()
    cfg = config.load(paths)
    cache = hostkeys.cache_for(paths, cfg)
    host = cfg["keys"]["host_key_id"]
    found = cache.list()
    if not as_json:
        click.echo(f"key cache: {cache.backend} ({len(found)} keys)")
    for k in sorted(found, key=lambda k: k.key_id):
        row = {
            "key_id": k.key_id,
            "key_kind": k.kind_name,
            "fingerprint": k.fingerprint.hex(),
            "cache": cache.backend,
            "host_key": k.key_id == host,
        }
        if as_json:
            emit_json(row)
        else:
            mark = " (host key)" if row["host_key"] else ""
            click.echo(f"{k.key_id}  {k.kind_name}  {row['fingerprint']}{mark}")


@keys.command()
def forget() -> None:
    """Empty the key cache, as a reboot does."""
    paths = get_paths()
    n = hostkeys.cache_for(paths).forget()
    info(f"forgot {n} keys; 'coreseal keys sync' reloads them")


@keys.command()
def sync() -> None:
    """Reload every key this host needs from the provider."""
    result = hostkeys.sync(get_paths())
    for key_id in result["replaced"]:
        warn(
            f"the cache held a different key under {key_id}; replaced it "
            "with the provider's"
        )
    for m in result["missing"]:
        warn(f"{m['key_id']}: {m['reason']}")
    info(
        f"loaded {len(result['loaded'])} keys into the {result['cache']} cache, "
        f"{len(result['missing'])} missing"
    )
    return 5 if result["missing"] else 0


@keys.command()
@json_option
def missing(as_json: bool) -> None:
    """List dumps whose key is not usable from the cache."""
    rows = hostkeys.missing(get_paths())
    for r in rows:
        if as_json:
            emit_json(r)
        else:
            what = r["file"] or "host key"
            click.echo(f"{what}  {r['key_id']}  {r['reason']}")
    if not rows and not as_json:
        info("every key is in the cache")


def register(cli: click.Group) -> None:
    cli.add_command(keys)
