"""A cloud's own certificate authority and the public VIP's server certificate, as PEM text.

Generated once per cloud when its secrets are completed (`hastack.render.secrets`), like its
passwords, and kept in secrets.yaml: a CA (its key stays there; nothing else signs with it)
and a server certificate for HAProxy whose subject alternative names are the public VIP's
address and DNS name — what TLS clients match (RFC 6125; the common name is not used).

ECDSA P-256 keys: fast to make, and what OpenSSL's default security level accepts. The CA
lives ten years, the server certificate 825 days (the longest validity Apple's TLS clients
accept); each is made again in its last `RENEW_DAYS`, at the next render.

`cryptography` is imported only when a certificate is made, so that importing the renderers
stays cheap; the helpers that only read PEM text need nothing beyond the standard library.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
from collections.abc import Sequence

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_DAYS = 30
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)


def pem_blocks(text: str, label: str) -> list[str]:
    """The PEM blocks of one kind ("CERTIFICATE", "PRIVATE KEY") in a text, in order."""
    return [m.group(0).rstrip("\r\n") + "\n" for m in _PEM_BLOCK.finditer(text)
            if m.group(1) == label or (label == "PRIVATE KEY" and m.group(1).endswith(label))]


def fingerprint(pem: str) -> str:
    """A short, stable name for a PEM text (which CA signed a server certificate)."""
    return hashlib.sha256(pem.encode()).hexdigest()[:16]


def expires_within(pem: str, days: int) -> bool:
    """Whether the first certificate of a PEM text ends within `days`."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem_blocks(pem, "CERTIFICATE")[0].encode())
    return cert.not_valid_after_utc - _now() < datetime.timedelta(days=days)


def new_ca(cloud: str) -> str:
    """A self-signed CA for one cloud: certificate, then its private key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "hastack"),
                      x509.NameAttribute(x509.NameOID.COMMON_NAME, f"hastack CA of {cloud}")])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return _cert_pem(cert) + _key_pem(key)


def new_server(ca: str, address: str, dns_names: Sequence[str],
               valid_days: int = SERVER_DAYS) -> str:
    """A server certificate for `address` and `dns_names`, signed by the CA text `new_ca`
    made: certificate, then its private key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_cert = x509.load_pem_x509_certificate(pem_blocks(ca, "CERTIFICATE")[0].encode())
    ca_key = serialization.load_pem_private_key(pem_blocks(ca, "PRIVATE KEY")[0].encode(),
                                                password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an ECDSA key made by hastack")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(address))]
    names += [x509.DNSName(n) for n in dns_names]
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME,
                                            dns_names[0] if dns_names else address)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _cert_pem(cert) + _key_pem(key)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _cert_pem(cert: object) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    assert isinstance(cert, x509.Certificate)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: object) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
