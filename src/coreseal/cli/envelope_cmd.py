"""``coreseal envelope describe|extract|seal``."""

import os
import sys

import click

from .. import config, events, hostkeys
from ..envelope import constants as c
from ..envelope.describe import describe as describe_file
from ..envelope.extract import extract_stream, open_envelope
from ..envelope.seal import seal_stream
from ..errors import (
    CoresealError,
    KeyUnavailable,
    NotAnEnvelope,
    UsageError,
)
from ..fsutil import AtomicFile, check_output, same_as_stdout
from .common import emit_json, get_paths, human_size, info, json_option
from .password import get_password, with_password

offset_option = click.option(
    "--offset",
    default=0,
    show_default=True,
    type=click.IntRange(0, c.MAX_PREFIX_LENGTH),
    metavar="N",
    help="The envelope starts after N plain bytes (e.g. 4096).",
)
force_option = click.option("--force", is_flag=True, help="Replace OUT if it exists.")
threads_option = click.option(
    "--threads",
    default=0,
    type=click.IntRange(0, 256),
    metavar="N",
    help="Worker threads (0: one per core for sealing, one for opening).",
)
sync_option = click.option(
    "--no-sync",
    "no_sync",
    is_flag=True,
    help="Do not wait for OUT to reach the disk (faster; after a power cut OUT "
    "may be missing or fail to open). A crash still leaves no partial OUT.",
)


@click.group()
def envelope() -> None:
    """Inspect, open and make sealed files."""


def _open_input(path: str):
    """Opens IN for reading; it must be seekable (the header is rewritten
    after streaming, and opening reads the prefix twice)."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CoresealError(f"failed to open {path}: {e.strerror}") from None
    if not f.seekable():
        f.close()
        raise UsageError(
            f"{path} is not a regular file", hint="save it to a file first"
        )
    return f


def _stdin():
    if sys.stdin is None:
        raise UsageError("standard input is closed")
    return sys.stdin.buffer


def print_description(d: dict, out=click.echo) -> None:
    out("sealed: yes")
    out(f"format: coreseal envelope v{d['format_version']}")
    out(
        f"cipher: {d['cipher']}, compression: {d['compression']}, "
        f"segments of {human_size(d['segment_size'])}"
    )
    out(f"dump type: {d['dump_type']}")
    size = f"{d['dump_size']} bytes"
    if d["truncated"]:
        size += f" (truncated from {d['original_size']} bytes)"
    out(f"dump size: {size}")
    out(f"plain prefix: {d['plain_prefix_length']} bytes")
    for k in d["keys"]:
        out(
            f"keyID: '{k['key_id']}' kind: {k['key_kind']} "
            f"fingerprint: {k['fingerprint']}"
        )
    for key in sorted(d["metadata"]):
        out(f"metadata: {key}={d['metadata'][key]}")


@envelope.command()
@offset_option
@json_option
@click.argument("file", type=click.Path(readable=False))
def describe(offset: int, as_json: bool, file: str) -> int:
    """Tell whether FILE is sealed, and with which key. Needs no key."""
    with _open_input(file) as f:
        try:
            d = describe_file(f, offset)
        except NotAnEnvelope as e:
            if as_json:
                emit_json({"sealed": False, "reason": str(e), "file": file})
            else:
                click.echo("sealed: no")
            raise
        except CoresealError as e:
            # A coreseal envelope, but one that cannot be read.
            if as_json:
                emit_json({"sealed": True, "error": str(e), "file": file})
            else:
                click.echo("sealed: yes (damaged)")
            raise
    d["file"] = file
    if as_json:
        emit_json(d)
    else:
        print_description(d)
    return 0


def _lookup(paths):
    cache = hostkeys.cache_for(paths)
    return cache.get


@envelope.command()
@offset_option
@force_option
@threads_option
@sync_option
@click.option(
    "--keyfile",
    type=click.Path(readable=False),
    metavar="F",
    help="Open with a bundle's incident key file (needs --password or "
    "--password-file); no coreseal state is needed.",
)
@with_password
@click.argument("src", metavar="IN", type=click.Path(readable=False))
@click.argument("out", metavar="OUT")
def extract(
    offset: int,
    force: bool,
    threads: int,
    no_sync: bool,
    keyfile: str | None,
    ask_password: bool,
    password_file: str | None,
    src: str,
    out: str,
) -> int:
    """Decrypt IN to OUT ('-' for stdout) with a key from the cache, or with
    an incident key file."""
    paths = get_paths()
    if keyfile and not (ask_password or password_file):
        raise UsageError("--keyfile needs --password or --password-file")
    if (ask_password or password_file) and not keyfile:
        raise UsageError("a password goes with --keyfile")
    if out == "-":
        if sys.stdout is None:
            raise UsageError("standard output is closed")
        if sys.stdout.isatty():
            raise UsageError(
                "refusing to write a dump to a terminal",
                hint="redirect stdout, or give a file name",
            )
        if same_as_stdout(src):
            raise UsageError("standard output is the input file")
    else:
        check_output(src, out, force)
    if keyfile:
        from ..bundle.incident import read_key_file

        incident = read_key_file(
            keyfile, get_password(ask_password, password_file, confirm=False)
        )
        lookup = {incident.key_id: incident}.get
    else:
        lookup = _lookup(paths)
    with _open_input(src) as f:
        try:
            unlocked = open_envelope(f, offset, lookup)
        except KeyUnavailable:
            if keyfile:
                raise KeyUnavailable(
                    "this key file does not open this dump (it belongs to another "
                    "bundle, or the dump was not rewrapped)"
                ) from None
            raise
        if out == "-":
            # Bytes reach stdout before the last segment is verified; a
            # failure still exits non-zero (docs: Limitations).
            size = extract_stream(
                f,
                unlocked,
                offset,
                sys.stdout.buffer,
                sparse=False,
                threads=threads or 1,
            )
            sys.stdout.buffer.flush()
        else:
            with AtomicFile(out, replace=force, direct=True, sync=not no_sync) as dst:
                size = extract_stream(
                    f, unlocked, offset, dst.file, sparse=True, threads=threads or 1
                )
                dst.commit()
    # Opening anywhere with a key file must not create coreseal state there.
    if not keyfile or os.path.isdir(paths.state):
        _decrypted_event(paths, src, unlocked, out, size)
    if out != "-":
        info(f"extracted {size} bytes to {out}")
    return 0


def _decrypted_event(paths, src, unlocked, out, size) -> None:
    events.record(
        paths,
        "dump-decrypted",
        file=os.path.abspath(src),
        key_id=unlocked.entry.key_id,
        by_uid=os.getuid(),
        by_user=os.environ.get("SUDO_USER") or os.environ.get("USER"),
        output=out if out == "-" else os.path.abspath(out),
        size=size,
    )


@envelope.command()
@offset_option
@force_option
@threads_option
@sync_option
@click.option(
    "--type",
    "dump_type",
    type=click.Choice(["process", "kernel", "vm", "file"]),
    default="file",
    show_default=True,
    help="What kind of dump IN is.",
)
@click.option("--vm", "vm", metavar="NAME", help="The workload of a VM dump.")
@click.argument("src", metavar="IN", type=click.Path(readable=False, allow_dash=True))
@click.argument("out", metavar="OUT", type=click.Path(readable=False))
def seal(
    offset: int,
    force: bool,
    threads: int,
    no_sync: bool,
    dump_type: str,
    vm: str | None,
    src: str,
    out: str,
) -> int:
    """Seal IN ('-' for stdin) into OUT under the key the policy gives: the
    host key, or for --type vm the VM key of its workload."""
    from ..policy import VM_NAME, sealing_key

    paths = get_paths()
    cfg = config.load(paths)
    config.require_sealed(cfg)
    if out == "-":
        raise UsageError(
            "seal writes a file: give OUT a file name",
            hint="the header is completed after the last segment",
        )
    if (dump_type == "vm") != bool(vm):
        raise UsageError("--type vm and --vm NAME go together")
    if vm and not VM_NAME.fullmatch(vm):
        raise UsageError("a workload name is letters, digits, '.', '_' or '-'")
    check_output(None if src == "-" else src, out, force)
    type_code = c.DUMP_TYPE_BY_NAME[dump_type]
    key = sealing_key(cfg, hostkeys.cache_for(paths, cfg), type_code, vm)
    meta = {"source": os.path.basename(src) if src != "-" else "stdin"}
    if vm:
        meta["vm"] = vm
    infile = _stdin() if src == "-" else _open_input(src)
    try:
        with AtomicFile(out, replace=force, direct=True, sync=not no_sync) as dst:
            result = seal_stream(
                infile,
                dst.file,
                [key],
                metadata=meta,
                dump_type=type_code,
                prefix_length=offset,
                threads=threads,
            )
            dst.commit()
    finally:
        if src != "-":
            infile.close()
    info(
        f"sealed {result.dump_size} bytes into {out} "
        f"({result.stored_size} bytes) under {key.key_id}"
    )
    return 0


@envelope.command()
@offset_option
@click.option(
    "--to-id",
    "to_id",
    required=True,
    metavar="KEYID",
    help="The wrapping key to move the dump to (from the key cache).",
)
@click.option(
    "--deep",
    is_flag=True,
    help="New data key and payload; the old key then opens nothing.",
)
@force_option
@threads_option
@click.argument("src", metavar="IN", type=click.Path(readable=False))
@click.argument("out", metavar="[OUT]", required=False, type=click.Path(readable=False))
def recrypt(
    offset: int,
    to_id: str,
    deep: bool,
    force: bool,
    threads: int,
    src: str,
    out: str | None,
) -> int:
    """Move IN to another key; without OUT, replace IN in place, atomically.

    By default only the header changes (a rewrap): the payload is copied, not
    read, and so not checked. With --deep every segment is decrypted and
    sealed again under a new data key."""
    from ..rekey import recrypt as move

    if out is not None and out == "-":
        raise UsageError("recrypt writes a file: give OUT a file name")
    _open_input(src).close()
    report = move(
        get_paths(),
        src,
        out,
        to_id,
        deep=deep,
        offset=offset,
        force=force,
        threads=threads,
    )
    what = "re-encrypted" if deep else "rewrapped"
    info(
        f"{what} {report['file']} from {report['from_key_id']} to {report['to_key_id']}"
    )
    if not deep:
        info("the payload was not read, so not checked (use --deep to check it)")
    return 0


def register(cli: click.Group) -> None:
    cli.add_command(envelope)
