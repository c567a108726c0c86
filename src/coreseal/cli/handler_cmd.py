"""``coreseal handler``: kernel.core_pattern."""

import click

from ..capture import install as inst
from .common import emit_json, get_paths, info, json_option


@click.group()
def handler() -> None:
    """Point kernel.core_pattern at coreseal's capture handler, and back."""


def _show(st: dict, as_json: bool) -> None:
    if as_json:
        emit_json(st)
        return
    click.echo(f"core_pattern: {st['core_pattern']}")
    click.echo(f"core_pipe_limit: {st['core_pipe_limit']}")
    click.echo(f"handler installed: {'yes' if st['installed'] else 'no'}")
    if st["saved_core_pattern"] is not None:
        click.echo(f"saved core_pattern: {st['saved_core_pattern']}")


@handler.command()
@json_option
def install(as_json: bool) -> None:
    """Install the capture handler, saving the previous core_pattern."""
    _show(inst.install(get_paths()), as_json)


@handler.command()
@json_option
def uninstall(as_json: bool) -> None:
    """Restore the core_pattern saved at install."""
    st = inst.uninstall(get_paths())
    info("previous core_pattern restored")
    _show(st, as_json)


@handler.command()
@json_option
def status(as_json: bool) -> None:
    """Show the current and the saved core_pattern."""
    _show(inst.status(get_paths()), as_json)


def register(cli: click.Group) -> None:
    cli.add_command(handler)
