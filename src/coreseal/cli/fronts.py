"""``crypto-util`` and ``vm-support``: the command lines administrators of
encrypted-dump hosts already know, as thin fronts over coreseal's own
commands (the same click commands, not a second implementation).

    crypto-util envelope describe [--offset N] FILE
    crypto-util envelope extract [--offset N] [--keyfile F --password] IN OUT
    crypto-util envelope recrypt [--offset N] --to-id KEYID [--deep] IN [OUT]
    crypto-util keys iskeyincache KEYID        prints YES or NO
    vm-support [--password]                    collect a bundle here
    vm-support -x BUNDLE [DIR]                 extract a bundle
    vm-support --reconstruct [DIR]             pack an extracted bundle again
"""

import sys

import click

from .. import hostkeys
from .bundle_cmd import collect, extract, reconstruct
from .common import get_paths
from .envelope_cmd import envelope
from .main import main
from .password import with_password

root_option = click.option(
    "--root",
    envvar="CORESEAL_ROOT",
    metavar="DIR",
    help="Keep config and state under DIR (default /). Env: CORESEAL_ROOT.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@root_option
@click.pass_context
def crypto_util_cli(ctx: click.Context, root: str | None) -> None:
    """Inspect and open sealed dumps, and query the key cache."""
    ctx.ensure_object(dict)
    ctx.obj["root"] = root


crypto_util_cli.add_command(envelope)


@crypto_util_cli.group()
def keys() -> None:
    """Query the key cache."""


@keys.command("iskeyincache")
@click.argument("key_id", metavar="KEYID")
def is_key_in_cache(key_id: str) -> int:
    """Print YES when KEYID is in the key cache, else NO (exit 1)."""
    from ..wrapkey import valid_key_id

    present = valid_key_id(key_id) and (
        hostkeys.cache_for(get_paths()).get(key_id) is not None
    )
    click.echo("YES" if present else "NO")
    return 0 if present else 1


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@root_option
@click.option(
    "-x",
    "--extract",
    "bundle",
    metavar="BUNDLE",
    help="Extract BUNDLE into DIR (default: here).",
)
@click.option(
    "--reconstruct",
    "do_reconstruct",
    is_flag=True,
    help="Pack the extracted bundle DIR (default: here) again.",
)
@click.option(
    "-w",
    "--working-dir",
    "out_dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where a new bundle goes.",
)
@with_password
@click.argument("directory", metavar="[DIR]", required=False)
@click.pass_context
def vm_support_cli(
    ctx, root, bundle, do_reconstruct, out_dir, ask_password, password_file, directory
):
    """Collect a support bundle (logs, events, sealed dumps), or extract or
    reconstruct one."""
    ctx.ensure_object(dict)
    ctx.obj["root"] = root
    if bundle and do_reconstruct:
        raise click.UsageError("-x and --reconstruct do not go together")
    if (bundle or do_reconstruct) and (ask_password or password_file or out_dir != "."):
        raise click.UsageError(
            "--password, --password-file and -w go with "
            "collecting, not with -x or --reconstruct"
        )
    if bundle:
        return ctx.invoke(extract, path=bundle, dest=directory or ".")
    if do_reconstruct:
        return ctx.invoke(reconstruct, directory=directory or ".", out=None)
    if directory:
        raise click.UsageError("DIR goes with -x or --reconstruct")
    return ctx.invoke(
        collect, out_dir=out_dir, ask_password=ask_password, password_file=password_file
    )


def crypto_util() -> int:
    return main(sys.argv[1:], crypto_util_cli, "crypto-util")


def vm_support() -> int:
    return main(sys.argv[1:], vm_support_cli, "vm-support")
