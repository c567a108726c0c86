"""``coreseal capture``: the handler, callable by hand (the kernel uses the
lean launcher that ``handler install`` writes)."""

import sys
import time

import click

from ..capture import handler, metadata
from ..envelope import constants as c
from ..errors import UsageError
from ..policy import VM_NAME
from .common import get_paths


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--type",
    "dump_type",
    type=click.Choice(["process", "kernel", "vm"]),
    default="process",
    show_default=True,
    help="process: from the kernel's core_pattern pipe, with its "
    "arguments; kernel: a vmcore; vm: a VM's memory (needs --vm).",
)
@click.option("--vm", "vm", metavar="NAME", help="The workload a VM dump belongs to.")
@click.option(
    "--offset",
    default=0,
    type=click.IntRange(0, c.MAX_PREFIX_LENGTH),
    metavar="N",
    help="Keep the first N bytes readable (a kdump header).",
)
@click.argument("kernel_args", nargs=-1, metavar="[PID UID GID SIGNAL TIME NAME]")
def capture(
    dump_type: str, vm: str | None, offset: int, kernel_args: tuple[str, ...]
) -> int:
    """Seal a dump read from stdin into the dumps directory."""
    if dump_type == "process":
        if vm:
            raise UsageError("--vm goes with --type vm")
        try:
            meta = metadata.from_kernel(list(kernel_args))
        except ValueError as e:
            raise UsageError(str(e)) from None
        meta.update(metadata.from_proc(meta["pid"]))
    else:
        if kernel_args:
            raise UsageError(f"--type {dump_type} takes no kernel arguments")
        if dump_type == "vm" and not (vm and VM_NAME.fullmatch(vm)):
            raise UsageError("--type vm needs --vm NAME (letters, digits, . _ -)")
        if dump_type == "kernel" and vm:
            raise UsageError("--vm goes with --type vm")
        meta = {
            "name": vm or "kernel",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pid": 0,
        }
        if vm:
            meta["vm"] = vm
    if sys.stdin is None:
        raise UsageError("standard input is closed")
    try:
        event = handler.capture(
            get_paths(), sys.stdin.buffer, meta, c.DUMP_TYPE_BY_NAME[dump_type], offset
        )
    except handler.Discarded as d:
        click.echo(f"coreseal: error: dump discarded: {d}", err=True)
        return 1
    click.echo(event["file"])
    return 0


def register(cli: click.Group) -> None:
    cli.add_command(capture)
