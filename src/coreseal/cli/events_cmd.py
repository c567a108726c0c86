"""``coreseal events``: the journal."""

import click

from .. import events as journal
from .common import emit_json, get_paths, json_option


@click.command()
@json_option
@click.option("--since", metavar="T", help="Only events at or after T (ISO 8601, UTC).")
@click.option(
    "--type",
    "type_",
    type=click.Choice(journal.TYPES),
    metavar="TYPE",
    help="Only events of this type.",
)
def events(as_json: bool, since: str | None, type_: str | None) -> None:
    """Show recorded events, oldest first."""
    if since and "T" not in since:
        since = since + "T00:00:00"
    for e in journal.query(get_paths(), since, type_):
        if as_json:
            emit_json(e)
            continue
        rest = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("time", "type"))
        click.echo(f"{e['time']}  {e['type']}  {rest}")


def register(cli: click.Group) -> None:
    cli.add_command(events)
