"""``coreseal keys``: the key cache."""

import click

from .. import config, hostkeys
from ..errors import EXIT_KEY, EXIT_PARTIAL
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
@json_option
def sync(as_json: bool) -> int:
    """Reload every key this host needs from its provider."""
    result = hostkeys.sync(get_paths())
    if as_json:
        emit_json(result)
    for key_id in result["replaced"]:
        warn(
            f"the cache held a different key under {key_id}; replaced it "
            "with the provider's"
        )
    for o in result["open_only"]:
        warn(f"{o['key_id']} is {o['state']}: it opens old dumps, seals nothing new")
    for m in result["missing"]:
        warn(f"{m['key_id']}: {m['message']}")
    info(
        f"loaded {len(result['loaded'])} keys into the {result['cache']} cache, "
        f"{len(result['missing'])} missing"
    )
    return EXIT_KEY if result["missing"] else 0


@keys.command()
@json_option
def missing(as_json: bool) -> None:
    """List the keys this host needs but cannot use from the cache, and why."""
    rows = hostkeys.missing(get_paths())
    for r in rows:
        if as_json:
            emit_json(r)
        else:
            what = r["file"] or r["what"]
            click.echo(f"{what}  {r['key_id']}  {r['reason']}: {r['message']}")
    if not rows and not as_json:
        info("every key is in the cache")


@keys.command("rotate-host-key")
@click.option(
    "--rewrap",
    is_flag=True,
    help="Also move every dump sealed under a host key to the new one.",
)
@json_option
def rotate_host_key(rewrap: bool, as_json: bool) -> int:
    """Make a new host key; new dumps use it, old dumps keep theirs unless
    --rewrap moves them (header only; the payload is not re-encrypted)."""
    from .. import config
    from ..keyadmin import rewrap_dumps
    from ..keyadmin import rotate_host_key as rotate

    paths = get_paths()
    old, new = rotate(paths)
    click.echo(f"host key: {new}")
    if not rewrap:
        info(f"the previous host key {old} still opens older dumps")
        return 0
    retired = config.load(paths)["keys"].get("previous_host_keys", [])
    report = rewrap_dumps(paths, new, retired)
    failed = [r for r in report["dumps"] if r["result"] not in ("moved", "already")]
    for r in report["dumps"]:
        if as_json:
            emit_json(r)
        else:
            extra = f": {r['message']}" if r.get("message") else ""
            click.echo(f"{r['file']}  {r['result']}{extra}")
    for key_id in report["retirable"]:
        info(f"no dump needs {key_id} any more: it is safe to retire")
    for key_id in report["still_needed"]:
        warn(f"dumps still need {key_id}: keep it")
    moved = sum(r["result"] == "moved" for r in report["dumps"])
    info(f"moved {moved} dumps to the new host key, {len(failed)} could not move")
    return EXIT_PARTIAL if failed else 0


@keys.command("vm-key")
@click.option("--create", is_flag=True, help="Create the key when it is missing.")
@json_option
@click.argument("name")
def vm_key(create: bool, as_json: bool, name: str) -> None:
    """Show (or create) the VM key of workload NAME."""
    from ..keyadmin import vm_key as find_or_make

    row = find_or_make(get_paths(), name, create)
    if as_json:
        emit_json(row)
    else:
        click.echo(f"vm {name}: {row['key_id']} ({row['cache']})")


def register(cli: click.Group) -> None:
    cli.add_command(keys)
