"""Secrets we must read back (buyers' passwords and tokens, webhook signing secrets), encrypted at rest.

API keys are hashed because we only ever compare them; these are sent or used as HMAC keys, so a
hash would not do. A database dump alone does not reveal them: the key lives in the environment.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class UndecryptableSecret(Exception):
    """The stored secret was encrypted with another FIELD_ENCRYPTION_KEY."""


def _fernet() -> Fernet:
    digest = hashlib.sha256(settings.FIELD_ENCRYPTION_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


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
