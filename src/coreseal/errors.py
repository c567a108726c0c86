"""One exception class per kind of failure, each with its exit code.

The library raises these with a short lowercase message; the CLI turns them
into one line on stderr and exits with ``exit_code``. docs/format.md lists
the codes.
"""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_FORMAT = 3
EXIT_INTEGRITY = 4
EXIT_KEY = 5
EXIT_PASSWORD = 6
EXIT_UNSAFE = 7
EXIT_PARTIAL = 8  # a batch where some items could not be done


class CoresealError(Exception):
    """Base class; ``hint`` is an optional second thought for people."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class UsageError(CoresealError):
    exit_code = EXIT_USAGE


class NotAnEnvelope(CoresealError):
    exit_code = EXIT_FORMAT


class MalformedEnvelope(CoresealError):
    exit_code = EXIT_FORMAT


class TruncatedEnvelope(MalformedEnvelope):
    exit_code = EXIT_FORMAT


class IntegrityError(CoresealError):
    exit_code = EXIT_INTEGRITY


class KeyUnavailable(CoresealError):
    exit_code = EXIT_KEY


class KeyMismatch(KeyUnavailable):
    """The cache holds a key under the ID, but not the key that sealed."""


class WrongPassword(CoresealError):
    exit_code = EXIT_PASSWORD


class UnsafeArchive(CoresealError):
    exit_code = EXIT_UNSAFE


class NotSetUp(CoresealError):
    exit_code = EXIT_FAILURE
