"""Staff API tokens (DRF's `Authorization: Token ...`) stored as digests: a token is shown once, when
it is made, and a copy of the database holds nothing that authenticates. DRF's Token model and table
are kept; its key column holds the digest."""

import hashlib
import secrets

from django.contrib.auth.models import User
from django.db import transaction
from rest_framework.authtoken.models import Token

# DRF's key column holds 40 characters: the first 160 bits of the token's SHA-256, in hex. A token
# is 160 random bits, so no key is needed beside the hash (and rotating FIELD_ENCRYPTION_KEY keeps tokens).
DIGEST_LENGTH = 40


def staff_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:DIGEST_LENGTH]


@transaction.atomic
def staff_token_create(*, user: User) -> tuple[Token, str]:
    """A new token for the user, in place of any earlier one: (what is stored, the token to show once)."""
    Token.objects.filter(user=user).delete()
    token = secrets.token_hex(20)
    return Token.objects.create(user=user, key=staff_token_digest(token)), token
