"""What every command group shares: the root, output helpers, the voice."""

import json
import sys

import click

from ..errors import UsageError
from ..paths import Paths, resolve


def get_paths() -> Paths:
    ctx = click.get_current_context()
    obj = ctx.find_root().obj
    if "paths" not in obj:
        try:
            obj["paths"] = resolve(obj.get("root"))
        except ValueError:
            raise UsageError(
                "CORESEAL_ROOT is empty",
                hint="leave it unset to use /, or name a directory",
            ) from None
    return obj["paths"]


def info(message: str) -> None:
    click.echo(f"coreseal: {message}", err=True)


def warn(message: str) -> None:
    click.echo(f"coreseal: warning: {message}", err=True)


def emit_json(obj) -> None:
    """JSON Lines: one object per line, stable field names."""
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


json_option = click.option(
    "--json", "as_json", is_flag=True, help="JSON Lines output, one object per line."
)
