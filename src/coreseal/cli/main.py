"""``coreseal``: the top-level group and the one place errors become exits."""

import os
import sys

import click

from ..errors import CoresealError, UsageError

EXIT_CODES = """\b
Exit codes:
  0  success
  1  other failure (I/O, full disk, not set up)
  2  usage: bad option, refused output
  3  not an envelope, malformed or truncated
  4  integrity failure (tampered or corrupted)
  5  key unavailable or not the key that sealed
  6  wrong password
  7  unsafe archive
  8  some items of a batch could not be done (see its report)
"""


# Each command's module is imported when that command runs: importing all
# of them cost 80 ms on every call (python -X importtime).
_MODULES = {
    "setup": "setup_cmd",
    "provider": "provider_cmd",
    "keys": "keys_cmd",
    "handler": "handler_cmd",
    "capture": "capture_cmd",
    "events": "events_cmd",
    "list": "dumps_cmd",
    "info": "dumps_cmd",
    "envelope": "envelope_cmd",
    "bundle": "bundle_cmd",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(_MODULES))

    def get_command(self, ctx: click.Context, name: str):
        if name in _MODULES and name not in self.commands:
            import importlib

            importlib.import_module(f".{_MODULES[name]}", __package__).register(self)
        return super().get_command(ctx, name)


@click.group(
    cls=_LazyGroup,
    epilog=EXIT_CODES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--root",
    envvar="CORESEAL_ROOT",
    metavar="DIR",
    help="Keep config and state under DIR (default /). Env: CORESEAL_ROOT.",
)
@click.version_option(package_name="coreseal")
@click.pass_context
def cli(ctx: click.Context, root: str | None) -> None:
    """Keeps crash dumps sealed: every dump encrypted the moment it is captured."""
    ctx.ensure_object(dict)
    if root is not None and not root.strip():
        raise UsageError(
            "--root (or CORESEAL_ROOT) is empty",
            hint="leave it unset to use /, or name a directory",
        )
    ctx.obj["root"] = root


def main(
    argv: list[str] | None = None,
    command: click.Command | None = None,
    prog_name: str = "coreseal",
) -> int:
    """Runs one command; returns its exit code (the console script exits
    with it). No traceback or "Aborted!" ever reaches the user."""
    command = command or cli
    try:
        rv = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except CoresealError as e:
        click.echo(f"coreseal: error: {e}", err=True)
        if e.hint:
            click.echo(f"coreseal: hint: {e.hint}", err=True)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help())
        return 2
    except click.ClickException as e:
        click.echo(f"coreseal: error: {e.format_message()}", err=True)
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("coreseal: error: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as e:
        # Anything the commands did not explain: a full disk, a read-only
        # filesystem. Outputs were temporary files, already gone.
        where = f" ({e.filename})" if e.filename else ""
        click.echo(f"coreseal: error: {e.strerror or e}{where}", err=True)
        return 1
    except MemoryError:
        click.echo("coreseal: error: out of memory", err=True)
        return 1
    except Exception as e:  # noqa: BLE001 - the last line of defence
        if os.environ.get("CORESEAL_DEBUG"):
            raise
        click.echo(
            f"coreseal: error: internal error ({type(e).__name__}: {e}); "
            "please report it (CORESEAL_DEBUG=1 shows where)",
            err=True,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
