"""The two keys a data key gives: header MAC key and payload key."""

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..secret import Secret
from . import constants as c


def _derive(data_key: Secret, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(
        data_key.reveal()
    )


def payload_key(data_key: Secret, salt: bytes) -> bytes:
    return _derive(data_key, salt, c.INFO_PAYLOAD)


def header_mac(data_key: Secret, salt: bytes, header_without_mac: bytes) -> bytes:
    key = _derive(data_key, salt, c.INFO_HEADER)
    return hmac.new(key, header_without_mac, hashlib.sha256).digest()
