"""Builds S/MIME mails for tests with `cryptography` and a throwaway key (RFC 8551): opaque
signed (the whole MIME entity inside a CMS SignedData) and enveloped (encrypted to a
certificate whose key the bot never has)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

HEADERS = ("From: Mette Holm <mette.holm@kommune.test>\r\nTo: it.projekter@kommune.test\r\n"
           "Subject: =?utf-8?q?Projektforslag=3A_M=C3=B8debooking?=\r\n"
           "Date: Mon, 02 Nov 2026 09:00:00 +0100\r\n"
           "Message-ID: <smime@kommune.test>\r\nMIME-Version: 1.0\r\n")


@cache
def identity() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "mette.holm@kommune.test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert, key


def signed_der(entity: bytes) -> bytes:
    """A CMS SignedData that carries `entity` inside it (opaque, not detached)."""
    cert, key = identity()
    return (pkcs7.PKCS7SignatureBuilder().set_data(entity)
            .add_signer(cert, key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))


def enveloped_der(entity: bytes) -> bytes:
    cert, _ = identity()
    return (pkcs7.PKCS7EnvelopeBuilder().set_data(entity).add_recipient(cert)
            .encrypt(serialization.Encoding.DER, []))


def smime_entity(der: bytes, content_type: str = "application/pkcs7-mime",
                 smime_type: str | None = "signed-data", name: str = "smime.p7m") -> bytes:
    """A MIME entity (headers and base64 body) holding a CMS structure."""
    params = f"; smime-type={smime_type}" if smime_type else ""
    body = base64.encodebytes(der).decode("ascii").replace("\n", "\r\n")
    return (f'Content-Type: {content_type}{params}; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + body).encode("ascii")


def mail(entity: bytes, sender: str = "mette.holm@kommune.test",
         to: str = "it.projekter@kommune.test") -> bytes:
    """A whole mail whose body is `entity` under ordinary headers."""
    headers = HEADERS.replace("mette.holm@kommune.test", sender).replace(
        "it.projekter@kommune.test", to)
    return headers.encode("ascii") + entity
