"""``coreseal list`` and ``coreseal info``, like coredumpctl."""

import click

from .. import dumps as store
from .. import hostkeys
from .common import emit_json, get_paths, human_size, json_option


def _key_state(cache, d: dict) -> str:
    for k in d.get("keys", []):
        cached = cache.get(k["key_id"])
        if cached and cached.fingerprint.hex() == k["fingerprint"]:
            return "present"
        if cached:
            return "mismatch"
    return "missing"


@click.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """List the sealed dumps on this host."""
    paths = get_paths()
    cache = hostkeys.cache_for(paths)
    rows = store.list_dumps(paths)
    if not as_json:
        click.echo(
            f"{'TIME':20}  {'TYPE':7}  {'PID':>7}  {'SIG':>3}  {'SIZE':>10}  "
            f"{'KEY':8} {'STATE':8} FILE"
        )
    for d in rows:
        meta = d.get("metadata", {})
        d["key_state"] = _key_state(cache, d) if d.get("sealed") else "n/a"
        if as_json:
            emit_json(d)
            continue
        kind = d["keys"][0]["key_kind"] if d.get("keys") else "?"
        click.echo(
            f"{meta.get('time', '?'):20}  {d.get('dump_type', '?'):7}  "
            f"{meta.get('pid', '-'):>7}  {meta.get('signal', '-'):>3}  "
            f"{human_size(d.get('dump_size', 0)):>10}  {kind:8} "
            f"{d['key_state']:8} {d['file']}"
        )


@click.command()
@json_option
@click.argument("dump")
def info(as_json: bool, dump: str) -> None:
    """Show one dump (a path, a file name in the dumps directory, or a PID)."""
    paths = get_paths()
    path = store.find(paths, dump)
    from ..envelope.describe import describe

    with open(path, "rb") as f:
        d = describe(f, store.envelope_offset(f))
    d["path"] = path
    d["key_state"] = _key_state(hostkeys.cache_for(paths), d)
    if as_json:
        emit_json(d)
        return
    meta = d["metadata"]
    click.echo(f"file: {path}")
    for field in (
        "name",
        "pid",
        "uid",
        "gid",
        "signal",
        "time",
        "exe",
        "hostname",
        "cgroup",
    ):
        if field in meta:
            click.echo(f"{field}: {meta[field]}")
    click.echo(f"dump type: {d['dump_type']}")
    click.echo(
        f"size: {d['dump_size']} bytes"
        + (f" (truncated from {d['original_size']})" if d["truncated"] else "")
    )
    for k in d["keys"]:
        click.echo(f"keyID: '{k['key_id']}' ({k['key_kind']} key, {d['key_state']})")


def register(cli: click.Group) -> None:
    cli.add_command(list_cmd)
    cli.add_command(info)
