"""A provider's secret under a password: scrypt, then AES-256-GCM.

File: one JSON object with the KDF parameters, salt, nonce and ciphertext.
The parameters are bounded on reading, so a hostile file cannot make us
spend unbounded memory or time.
"""

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import CoresealError, UsageError, WrongPassword
from ..secret import Secret

FORMAT = "coreseal-provider-backup"
VERSION = 1
SCRYPT_LOG_N = 17  # ~0.55 s and 128 MiB here (notes/performance.md)
MIN_LOG_N, MAX_LOG_N = 15, 18
MAX_FILE = 1 << 20


def _key(password: Secret, salt: bytes, log_n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << log_n, r=8, p=1).derive(
        password.reveal()
    )


def _aad(fmt: str, log_n: int) -> bytes:
    # The format name is bound in: a backup never opens as a key file.
    return f"{fmt} v{VERSION} scrypt n=2^{log_n} r=8 p=1".encode()


def protect(payload: bytes, password: Secret, fmt: str = FORMAT) -> bytes:
    """``payload`` encrypted under ``password``, as a small JSON file."""
    salt, nonce = os.urandom(16), os.urandom(12)
    key = _key(password, salt, SCRYPT_LOG_N)
    ct = AESGCM(key).encrypt(nonce, payload, _aad(fmt, SCRYPT_LOG_N))
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return (
        json.dumps(
            {
                "format": fmt,
                "version": VERSION,
                "kdf": {"name": "scrypt", "log_n": SCRYPT_LOG_N, "r": 8, "p": 1},
                "salt": b64(salt),
                "nonce": b64(nonce),
                "ciphertext": b64(ct),
            },
            indent=1,
        ).encode()
        + b"\n"
    )


def unprotect(
    blob: bytes, password: Secret, fmt: str = FORMAT, what: str = "provider backup"
) -> bytes:
    if len(blob) > MAX_FILE:
        raise CoresealError(f"not a coreseal {what} (too large)")
    try:
        obj = json.loads(blob)
        if obj["format"] != fmt or obj["version"] != VERSION:
            raise ValueError
        kdf = obj["kdf"]
        log_n = kdf["log_n"]
        if type(log_n) is not int or kdf["name"] != "scrypt":
            raise ValueError
        if kdf["r"] != 8 or kdf["p"] != 1:
            raise ValueError
        salt = base64.b64decode(obj["salt"], validate=True)
        nonce = base64.b64decode(obj["nonce"], validate=True)
        ct = base64.b64decode(obj["ciphertext"], validate=True)
    except (ValueError, KeyError, TypeError, RecursionError):
        raise CoresealError(f"not a coreseal {what}") from None
    if not MIN_LOG_N <= log_n <= MAX_LOG_N or len(nonce) != 12 or len(salt) < 16:
        raise CoresealError("the backup's parameters are out of range")
    try:
        key = _key(password, salt, log_n)
        return AESGCM(key).decrypt(nonce, ct, _aad(fmt, log_n))
    except InvalidTag:
        raise WrongPassword(f"wrong password, or the {what} is damaged") from None


def read_password_file(path: str) -> Secret:
    """The password is the file's first line, without its line end."""
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except OSError as e:
        raise CoresealError(f"failed to read the password file: {e.strerror}") from None
    line = data.split(b"\n", 1)[0].removesuffix(b"\r")
    if not line:
        raise UsageError("the password file is empty (its first line is)")
    return Secret(line)
