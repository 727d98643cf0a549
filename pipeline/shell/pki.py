"""A throw-away certificate authority and loopback certificates, made at start.

For the local Apache Kafka cluster's TLS listener (:mod:`pipeline.shell.kafka_cluster`):
a CA valid for a day, and one server certificate it signed for ``127.0.0.1`` and
``localhost``, written as PEM. Kafka reads a PEM key store as one file holding the private
key and the certificate chain; clients verify the brokers against ``ca.pem``.
:class:`CertificateAuthority` and :meth:`CertificateAuthority.issue` are also what the
soak's TLS test listener (``soak.tlsfake``) makes its server and client certificates with.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class ServerPki:
    """Where the CA certificate and the server's key store (key + chain, PEM) are."""

    ca: Path
    keystore: Path


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class CertificateAuthority:
    """A fresh CA (EC P-256) valid from five minutes ago for a day, kept in memory."""

    def __init__(self, name: str) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.start = now - datetime.timedelta(minutes=5)
        self.end = now + datetime.timedelta(days=1)
        self.name = _name(name)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.start)
            .not_valid_after(self.end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM."""
        return self.cert.public_bytes(_PEM)

    def issue(self, common_name: str, *, server: bool) -> Issued:
        """Sign a new key's certificate; a server one is for ``127.0.0.1`` and ``localhost``."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.start)
            .not_valid_after(self.end)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        cert = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
            critical=False,
        ).sign(self._key, hashes.SHA256())
        return Issued(
            cert.public_bytes(_PEM),
            key.private_bytes(
                _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )


def make_server_pki(folder: Path, ca_name: str = "cdrveil-local-kafka-ca") -> ServerPki:
    """Write a fresh CA (``ca.pem``) and a loopback server key store (``server.pem``)."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = CertificateAuthority(ca_name)
    server = authority.issue("127.0.0.1", server=True)
    pki = ServerPki(folder / "ca.pem", folder / "server.pem")
    pki.ca.write_bytes(authority.cert_pem)
    pki.keystore.touch(mode=0o600)
    pki.keystore.write_bytes(server.key + server.cert + authority.cert_pem)
    return pki
