"""``coreseal provider backup|restore``: the native provider's secret."""

import os

import click

from .. import config
from ..errors import CoresealError, UsageError
from ..fsutil import AtomicFile, check_output, write_private
from ..keys.backup import protect, read_password_file, unprotect
from ..keys.native import NativeProvider, state_path
from .common import get_paths, info

password_file = click.option(
    "--password-file",
    required=True,
    type=click.Path(dir_okay=False),
    help="File holding the password (one line); never on the command line.",
)


@click.group()
def provider() -> None:
    """Back up and restore the native key provider."""


@provider.command()
@password_file
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.argument("out", type=click.Path(dir_okay=False))
def backup(password_file: str, force: bool, out: str) -> None:
    """Save the native provider's secret to OUT, under a password."""
    paths = get_paths()
    check_output(state_path(paths), out, force)
    state = NativeProvider.load(paths)
    blob = protect(state.to_bytes(), read_password_file(password_file))
    with AtomicFile(out, replace=force) as f:
        f.file.write(blob)
        f.commit()
    info(f"provider {state.provider_id} backed up to {out}")
    info("keep it and its password apart, and away from this host")


@provider.command()
@password_file
@click.option("--force", is_flag=True, help="Replace the provider on this host.")
@click.argument("src", metavar="IN", type=click.Path(readable=False))
def restore(password_file: str, force: bool, src: str) -> None:
    """Restore the native provider's secret from a backup IN."""
    paths = get_paths()
    try:
        with open(src, "rb") as f:
            blob = f.read((1 << 20) + 1)
    except OSError as e:
        raise CoresealError(f"failed to read {src}: {e.strerror}") from None
    state = NativeProvider.from_bytes(
        unprotect(blob, read_password_file(password_file))
    )
    if os.path.exists(state_path(paths)) and not force:
        current = NativeProvider.load(paths)
        if current.provider_id != state.provider_id:
            raise UsageError(
                f"this host has another native provider ({current.provider_id})",
                hint="use --force to replace it",
            )
    write_private(state_path(paths), state.to_bytes())
    info(f"provider {state.provider_id} restored with {len(state.key_names())} keys")
    cfg = config.load(paths)
    host = cfg["keys"]["host_key_id"]
    if cfg["sealed_mode"]["enabled"] and host and state.owns(host):
        info("run 'coreseal keys sync' to load its keys into the key cache")
    else:
        info("run 'coreseal setup' to seal under this provider's host key")


def register(cli: click.Group) -> None:
    cli.add_command(provider)
