"""The incident key: a fresh wrapping key for one bundle, stored in the
bundle under a password so support can open its dumps anywhere."""

import json
import os
import secrets

from ..errors import CoresealError, WrongPassword
from ..keys.backup import protect, unprotect
from ..secret import Secret
from ..wrapkey import KIND_INCIDENT, WrappingKey

KEY_FILE_FORMAT = "coreseal-incident-key"
# A wrong password and a damaged file must look alike: neither tells an
# attacker which one it was.
BAD = "wrong password, or the key file is damaged or not a key file"


def new_incident_key() -> WrappingKey:
    return WrappingKey(
        f"coreseal:incident/{secrets.token_hex(8)}",
        KIND_INCIDENT,
        Secret(os.urandom(32)),
    )


def key_file_bytes(key: WrappingKey, password: Secret, bundle: str) -> bytes:
    payload = json.dumps(
        {"key_id": key.key_id, "key": key.secret.reveal().hex(), "bundle": bundle}
    ).encode()
    return protect(payload, password, KEY_FILE_FORMAT)


def read_key_file(path: str, password: Secret) -> WrappingKey:
    try:
        with open(path, "rb") as f:
            blob = f.read(1 << 20)
    except OSError as e:
        raise CoresealError(f"failed to read {path}: {e.strerror}") from None
    try:
        obj = json.loads(unprotect(blob, password, KEY_FILE_FORMAT, "key file"))
        return WrappingKey(
            obj["key_id"], KIND_INCIDENT, Secret(bytes.fromhex(obj["key"]))
        )
    except (CoresealError, ValueError, KeyError, TypeError):
        raise WrongPassword(BAD) from None
