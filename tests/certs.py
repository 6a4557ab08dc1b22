"""Test certificates, made when a test needs them (nothing checked in, nothing that expires in
the repository): a CA, a server certificate for 127.0.0.1 / localhost signed by it, client
certificates, and a second CA that signs nothing the server trusts."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pair:
    cert: str  # path of the PEM certificate
    key: str  # path of the PEM private key


@dataclass
class Authority:
    """A CA with the files it wrote, able to sign more certificates."""

    name: str
    directory: str
    pair: Pair
    _key: ec.EllipticCurvePrivateKey
    _cert: x509.Certificate

    @property
    def ca_file(self) -> str:
        return self.pair.cert

    def issue(self, name: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
              client: bool = False, days: int = 30, expired: bool = False,
              both: bool = False, subject: tuple[tuple[x509.ObjectIdentifier, str], ...] = (),
              emails: tuple[str, ...] = ()) -> Pair:
        """A certificate for a server (`hosts` in its names), a client, or `both` (a route's:
        each side of a route is server and client). `subject`: its attributes in the
        certificate's order (default: CN=<name>); `emails`: email alternative names."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        day = datetime.timedelta(days=1)
        start, end = (now - 10 * day, now - day) if expired else \
            (now - datetime.timedelta(minutes=5), now + days * day)
        names: list[x509.GeneralName] = [x509.RFC822Name(email) for email in emails]
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
        if both:
            usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(oid, value)
                                            for oid, value in subject] or
                                           [x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(self._cert.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return _write(self.directory, name, key, cert)


def authority(directory: str, name: str = "test-ca") -> Authority:
    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return Authority(name, directory, _write(directory, name, key, cert), key, cert)


def _write(directory: str, name: str, key: ec.EllipticCurvePrivateKey,
           cert: x509.Certificate) -> Pair:
    cert_path = os.path.join(directory, f"{name}.pem")
    key_path = os.path.join(directory, f"{name}-key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return Pair(cert_path, key_path)
