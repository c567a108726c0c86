"""``coreseal events``: the journal."""

import click

from .. import events as journal
from ..errors import UsageError
from .common import emit_json, get_paths, json_option


@click.command()
@json_option
@click.option("--since", metavar="T", help="Only events at or after T (ISO 8601, UTC).")
@click.option(
    "--type",
    "type_",
    type=click.Choice(journal.TYPES),
    help="Only events of this type.",
)
def events(as_json: bool, since: str | None, type_: str | None) -> None:
    """Show recorded events, oldest first."""
    if since:
        since = _iso(since)
    for e in journal.query(get_paths(), since, type_):
        if as_json:
            emit_json(e)
            continue
        rest = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("time", "type"))
        click.echo(f"{e['time']}  {e['type']}  {rest}")


def _iso(text: str) -> str:
    """The same text form the journal stores, so strings compare in order."""
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {text!r} is not an ISO 8601 time",
            hint="for example 2026-12-03 or 2026-12-03T11:00:00Z",
        ) from None
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def register(cli: click.Group) -> None:
    cli.add_command(events)
