"""Passwords arrive by file, environment or terminal prompt, never argv."""

import os

import click

from ..errors import UsageError
from ..keys.backup import read_password_file
from ..secret import Secret

ENV = "CORESEAL_PASSWORD"


def get_password(ask: bool, password_file: str | None, confirm: bool) -> Secret | None:
    """``--password-file F`` wins; ``--password`` takes CORESEAL_PASSWORD or
    asks on the terminal (twice when ``confirm``). None when neither."""
    if password_file and ask:
        raise UsageError("--password and --password-file do not go together")
    if password_file:
        return read_password_file(password_file)
    if not ask:
        return None
    value = os.environ.get(ENV)
    if value is None:
        if not os.isatty(0):
            raise UsageError(
                "no terminal to ask for the password",
                hint=f"use --password-file F or set {ENV}",
            )
        value = click.prompt(
            "password", hide_input=True, err=True, confirmation_prompt=confirm
        )
    if not value:
        raise UsageError("an empty password is refused")
    return Secret(value.encode())


password_options = [
    click.option(
        "--password",
        "ask_password",
        is_flag=True,
        help=f"Use a password: from {ENV}, else asked on the terminal.",
    ),
    click.option(
        "--password-file",
        type=click.Path(readable=False),
        metavar="F",
        help="Read the password from F (its first line).",
    ),
]


def with_password(f):
    for option in reversed(password_options):
        f = option(f)
    return f
