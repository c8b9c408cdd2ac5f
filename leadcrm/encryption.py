"""Secrets we must read back (buyers' passwords and tokens, webhook signing secrets, staff's
authenticator keys), encrypted at rest; secrets we only compare (staff's backup codes), digested.

API keys are hashed because we only ever compare them; these are sent or used as HMAC keys, so a
hash would not do. A database dump alone does not reveal them: the key lives in the environment.
"""

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

SEALED_PREFIX = "aesgcm1$"
_NONCE_BYTES = 12


class UndecryptableSecret(Exception):
    """The stored secret was encrypted with another FIELD_ENCRYPTION_KEY."""


def _fernet() -> Fernet:
    key = hashlib.sha256(settings.FIELD_ENCRYPTION_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise UndecryptableSecret(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEY (or SECRET_KEY) changed."
        ) from error


def seal(secret: bytes, *, purpose: str) -> str:
    """A short secret encrypted and authenticated (AES-GCM), as text, for a column too narrow for a
    Fernet token: a 20-byte authenticator key takes 72 characters. `purpose` keeps one kind of
    secret from being read as another."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_derived_key("seal")).encrypt(nonce, secret, purpose.encode())
    return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(text: str, *, purpose: str) -> bytes:
    if not is_sealed(text):
        raise ValueError("Not a sealed secret.")
    raw = base64.urlsafe_b64decode(text.removeprefix(SEALED_PREFIX) + "=" * (-len(text) % 4))
    try:
        return AESGCM(_derived_key("seal")).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose.encode())
    except InvalidTag as error:
        raise UndecryptableSecret(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEY (or SECRET_KEY) changed."
        ) from error


def is_sealed(text: str) -> bool:
    return text.startswith(SEALED_PREFIX)


def digest(secret: str, *, purpose: str, length: int) -> str:
    """A keyed digest (HMAC-SHA256) of a secret we only compare, as `length` base32 characters: a
    database dump alone cannot be checked against guesses, since the key lives in the environment."""
    mac = hmac.new(_derived_key(f"digest:{purpose}"), secret.encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode()[:length]


def _derived_key(use: str) -> bytes:
    """A 256-bit key for one use, from FIELD_ENCRYPTION_KEY (HMAC-SHA256 as the derivation)."""
    return hmac.new(settings.FIELD_ENCRYPTION_KEY.encode(), f"leadcrm:{use}".encode(), hashlib.sha256).digest()
