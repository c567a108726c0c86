"""A small PKI for tests: a CA, a server certificate for 127.0.0.1 and
localhost, and client certificates, all EC P-256 (so the KMIP server can
offer GCM suites)."""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: str, data: bytes) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


class CA:
    def __init__(self, directory: str, name: str = "coreseal test CA"):
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.name = _name(name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(
                x509.KeyUsage(
                    False, False, False, False, False, True, True, False, False
                ),
                True,
            )
            .sign(self.key, hashes.SHA256())
        )
        slug = name.replace(" ", "-")
        self.path = _write(
            os.path.join(directory, f"{slug}.crt"),
            self.cert.public_bytes(serialization.Encoding.PEM),
        )

    def issue(self, cn: str, usage=None, server: bool = False) -> tuple[str, str]:
        """Returns (certificate path, key path)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                False,
            )
            usage = [ExtendedKeyUsageOID.SERVER_AUTH] if usage is None else usage
        elif usage is None:
            usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if usage:
            b = b.add_extension(x509.ExtendedKeyUsage(usage), False)
        cert = b.sign(self.key, hashes.SHA256())
        cert_path = _write(
            os.path.join(self.dir, f"{cn}.crt"),
            cert.public_bytes(serialization.Encoding.PEM),
        )
        key_path = _write(
            os.path.join(self.dir, f"{cn}.key"),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        return cert_path, key_path
