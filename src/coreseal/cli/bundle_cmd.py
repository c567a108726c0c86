"""``coreseal bundle collect|extract|reconstruct|clean``."""

import os

import click

from ..errors import CoresealError
from .common import get_paths, info, warn
from .password import get_password, with_password


@click.group()
def bundle() -> None:
    """Support bundles: logs, events and sealed dumps in one archive."""


@bundle.command()
@click.option(
    "-o",
    "--output-dir",
    "out_dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to write the bundle.",
)
@with_password
def collect(out_dir: str, ask_password: bool, password_file: str | None) -> None:
    """Write HOST.DATE_TIME.tgz; with a password its dumps are rewrapped to
    a fresh incident key, stored in the bundle under that password."""
    from ..bundle.collect import collect as run_collect

    password = get_password(ask_password, password_file, confirm=True)
    if not os.path.isdir(out_dir):
        raise CoresealError(f"{out_dir} is not a directory")
    result = run_collect(get_paths(), out_dir, password)
    for d in result["dumps"]:
        if password is not None and not d["rewrapped"]:
            warn(
                f"{d['file']} is in the bundle under its own key, not the "
                f"incident key: {d['note']}"
            )
    click.echo(result["bundle"])
    info(
        f"{len(result['dumps'])} dumps; "
        + (
            "password-protected incident key file included"
            if result["password_protected"]
            else "no password: the dumps open only with this host's keys"
        )
    )


@bundle.command()
@click.argument("path", metavar="BUNDLE", type=click.Path(readable=False))
@click.argument("dest", metavar="DIR", type=click.Path(readable=False))
def extract(path: str, dest: str) -> None:
    """Unpack BUNDLE under DIR after checking every member."""
    from ..bundle.unpack import extract as run_extract

    if not os.path.isfile(path):
        raise CoresealError(f"{path} is not a file")
    result = run_extract(path, dest)
    click.echo(result["dir"])
    if result["manifest"].get("password_protected"):
        info(
            "open its dumps with: coreseal envelope extract --keyfile "
            f"{os.path.join(result['dir'], 'incident-key-file')} --password IN OUT"
        )


@bundle.command()
@click.argument("directory", metavar="DIR", type=click.Path(readable=False))
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(readable=False),
    help="The new bundle (default: DIR-reconstructed.tgz beside DIR).",
)
def reconstruct(directory: str, out: str | None) -> None:
    """Pack an extracted bundle again, with a fresh manifest."""
    from ..bundle.reconstruct import reconstruct as run

    # Not DIR.tgz: that is usually the bundle DIR was extracted from.
    out = out or os.path.abspath(directory).rstrip("/") + "-reconstructed.tgz"
    result = run(directory, out)
    for rel in result["decrypted"]:
        warn(f"{rel} is a decrypted dump: this bundle holds plaintext")
    click.echo(result["bundle"])


@bundle.command()
@click.argument("directory", metavar="DIR", type=click.Path(readable=False))
def clean(directory: str) -> None:
    """Remove decrypted dumps and the incident key file from DIR."""
    from ..bundle.reconstruct import clean as run

    for rel in run(directory):
        info(f"removed {rel}")


def register(cli: click.Group) -> None:
    cli.add_command(bundle)
