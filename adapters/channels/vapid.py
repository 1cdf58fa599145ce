"""VAPID (RFC 8292): the hub's push identity. :class:`VapidKey` holds the P-256 key pair (loaded from, or created
at, the configured PEM file), signs the ES256 JWT a push service checks, and caches one token per push service origin
(and subject) for most of its life, so a fan-out signs once per push service, not once per message.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from hub.config.load import LoadedConfig
from hub.errors import ConfigError

log = logging.getLogger("warnhub.push")

TOKEN_LIFE_S = 12 * 3600
TOKEN_RENEW_S = 3600
"""A cached VAPID token is replaced when less than this is left of its life."""

_CURVE = ec.SECP256R1()
_X962 = serialization.Encoding.X962
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
_JWT_HEADER = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"ES256"}').rstrip(b"=").decode()


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class VapidKey:
    """The hub's VAPID key pair and the tokens signed with it, one per push service origin (cached)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError(f"VAPID keys are P-256, not {private_key.curve.name}")
        self._key = private_key
        self._public = _b64e(private_key.public_key().public_bytes(_X962, _UNCOMPRESSED))
        self._tokens: dict[tuple[str, str], tuple[str, int]] = {}

    @property
    def public_key_b64url(self) -> str:
        """The ``applicationServerKey`` browsers subscribe with (uncompressed point, base64url, no padding)."""
        return self._public

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(_CURVE))

    def pem(self) -> bytes:
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    @classmethod
    def load_or_create(cls, path: Path) -> VapidKey:
        """Read the PEM private key at ``path``, or create one there (parent folders too, file mode 0600)."""
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            return cls._create(path)
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the VAPID key: {err.strerror}") from err
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("VAPID key %s is readable by others (mode %o); chmod 600 it", path, mode)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{path}: not an unencrypted PEM private key") from err
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError(f"{path}: the VAPID key must be an EC P-256 key")
        return cls(key)

    @classmethod
    def _create(cls, path: Path) -> VapidKey:
        vapid = cls.generate()
        tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                os.write(fd, vapid.pem())
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # atomic and never overwrites: a key another process created first wins
            except FileExistsError:
                return cls.load_or_create(path)
            except OSError:
                os.replace(tmp, path)  # a file system without hard links: still atomic
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as err:
            raise ConfigError(f"{path}: cannot create the VAPID key: {err.strerror}") from err
        finally:
            tmp.unlink(missing_ok=True)
        log.info("created VAPID key %s", path)
        return vapid

    def token(self, aud: str, subject: str, *, now: float | None = None) -> str:
        """A signed ES256 JWT for push service origin ``aud``, reused until less than an hour of its life is left."""
        now = time.time() if now is None else now
        cached = self._tokens.get((aud, subject))
        if cached is not None and cached[1] - now >= TOKEN_RENEW_S:
            return cached[0]
        exp = int(now) + TOKEN_LIFE_S
        claims = json.dumps({"aud": aud, "exp": exp, "sub": subject}, separators=(",", ":")).encode()
        signing_input = f"{_JWT_HEADER}.{_b64e(claims)}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        token = f"{signing_input}.{_b64e(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        self._tokens[(aud, subject)] = (token, exp)
        return token

    def forget(self, aud: str) -> None:
        """Drop the cached tokens for ``aud`` (the push service refused one)."""
        for key in [k for k in self._tokens if k[0] == aud]:
            del self._tokens[key]

    def authorization(self, aud: str, subject: str, *, now: float | None = None) -> str:
        """The ``Authorization`` header value for a push to origin ``aud``."""
        return f"vapid t={self.token(aud, subject, now=now)}, k={self._public}"


@functools.lru_cache(maxsize=8)
def _hub_key(path: Path) -> VapidKey:
    return VapidKey.load_or_create(path)


def hub_key(loaded: LoadedConfig) -> VapidKey:
    """The hub's VAPID key (``push.vapid_key``), created on first start (mode 0600); read once per process."""
    return _hub_key(loaded.path(loaded.cfg.push.vapid_key))


def hub_public_key(loaded: LoadedConfig) -> str:
    """The public half of the hub's VAPID key: the key browsers subscribe with (``warnhub.push`` ``public_key``)."""
    return hub_key(loaded).public_key_b64url
