"""Web Push payload encryption (RFC 8291, ``aes128gcm``): one record per message, a fresh key pair per message.

Works straight on ``cryptography`` primitives (HKDF written out with :func:`hmac.digest`): a fan-out costs one ECDH
per recipient. Used by :mod:`adapters.channels.webpush` in its worker processes or an executor.
"""

from __future__ import annotations

import base64
import hmac
import os
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAX_PLAINTEXT = 3993
"""RFC 8291 section 4: one 4096-byte record, less the 86-byte header, the 16-byte tag and the delimiter."""
_CURVE = ec.SECP256R1()
_ECDH = ec.ECDH()
_X962 = serialization.Encoding.X962
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
_HEADER_RS_IDLEN = struct.pack("!LB", 4096, 65)
_KEY_INFO = b"Content-Encoding: aes128gcm\x00\x01"
_NONCE_INFO = b"Content-Encoding: nonce\x00\x01"
_WEBPUSH_INFO = b"WebPush: info\x00"


def b64d(text: str) -> bytes:
    """Lenient base64url decoding for the hot path (bad input fails later, on the key checks)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) & 3))


# --- encryption (RFC 8291) -----------------------------------------------------------------------------------------


def encrypt(plaintext: bytes, ua_public: bytes, auth_secret: bytes) -> bytes:
    if len(plaintext) > MAX_PLAINTEXT or len(auth_secret) != 16 or len(ua_public) != 65:
        raise ValueError("unusable input")
    peer = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, ua_public)  # also checks the point is on the curve
    ephemeral = ec.generate_private_key(_CURVE)  # a fresh key pair per message, as pywebpush does
    as_public = ephemeral.public_key().public_bytes(_X962, _UNCOMPRESSED)
    shared = ephemeral.exchange(_ECDH, peer)
    # HKDF-SHA256 written out with hmac.digest: every output is at most one hash long, so Expand is one HMAC
    prk_key = hmac.digest(auth_secret, shared, "sha256")
    ikm = hmac.digest(prk_key, _WEBPUSH_INFO + ua_public + as_public + b"\x01", "sha256")
    salt = os.urandom(16)
    prk = hmac.digest(salt, ikm, "sha256")
    cek = hmac.digest(prk, _KEY_INFO, "sha256")[:16]
    nonce = hmac.digest(prk, _NONCE_INFO, "sha256")[:12]
    record = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)  # one record, last-record delimiter 0x02
    return b"".join((salt, _HEADER_RS_IDLEN, as_public, record))


def encrypt_batch(items: list[tuple[bytes, str, str]]) -> list[bytes]:
    """Encrypt (plaintext, p256dh, auth) triples to ``aes128gcm`` bodies, in order.

    Picklable, for a process pool. Never raises for one item: an item whose keys are unusable or whose plaintext is
    longer than :data:`MAX_PLAINTEXT` yields ``b""`` (a real body is never empty).
    """
    out: list[bytes] = []
    append = out.append
    for plaintext, p256dh, auth in items:
        try:
            append(encrypt(plaintext, b64d(p256dh), b64d(auth)))
        except (ValueError, TypeError):
            append(b"")
    return out


def warm() -> None:
    """Load and initialise what encrypting needs (a worker process does this before its first push)."""
    point = ec.generate_private_key(_CURVE).public_key().public_bytes(_X962, _UNCOMPRESSED)
    encrypt(b"{}", point, bytes(16))
