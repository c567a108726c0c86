"""``coreseal capture``: the handler, callable by hand (the kernel uses the
lean launcher that ``handler install`` writes)."""

import sys

import click

from ..capture import handler, metadata
from ..envelope import constants as c
from ..errors import UsageError
from .common import get_paths


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--type",
    "dump_type",
    type=click.Choice(["process"]),
    default="process",
    show_default=True,
    help="What kind of dump (VM and kernel dumps come with the key policy).",
)
@click.argument("kernel_args", nargs=-1, metavar="PID UID GID SIGNAL TIME NAME")
def capture(dump_type: str, kernel_args: tuple[str, ...]) -> int:
    """Seal a dump read from stdin (the kernel's %P %u %g %s %t %e)."""
    try:
        meta = metadata.from_kernel(list(kernel_args))
    except ValueError as e:
        raise UsageError(str(e)) from None
    meta.update(metadata.from_proc(meta["pid"]))
    try:
        event = handler.capture(
            get_paths(), _stdin(), meta, c.DUMP_TYPE_BY_NAME[dump_type]
        )
    except handler.Discarded as d:
        click.echo(f"coreseal: error: dump discarded: {d}", err=True)
        return 1
    click.echo(event["file"])
    return 0


def _stdin():
    if sys.stdin is None:
        raise UsageError("standard input is closed")
    return sys.stdin.buffer


def register(cli: click.Group) -> None:
    cli.add_command(capture)
