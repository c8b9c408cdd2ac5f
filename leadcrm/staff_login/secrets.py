"""How staff's second-factor secrets are stored: authenticator keys sealed (read back to check a code),
backup codes digested (only compared). Used by the model, the services and the migration that
converted what django-otp had stored in the clear."""

from leadcrm.encryption import digest, seal, unseal

KEY_PURPOSE = "otp_totp.key"
BACKUP_CODE_PURPOSE = "otp_static.token"
# django-otp's token column holds 16 characters; its own codes are 8, so a stored digest is told apart.
BACKUP_CODE_DIGEST_LENGTH = 16


def sealed_key(hex_key: str) -> str:
    return seal(bytes.fromhex(hex_key), purpose=KEY_PURPOSE)


def unsealed_key(stored: str) -> bytes:
    return unseal(stored, purpose=KEY_PURPOSE)


def backup_code_digest(code: str) -> str:
    """What is stored for a backup code, and looked up for one typed in (normalised by the caller)."""
    return digest(code, purpose=BACKUP_CODE_PURPOSE, length=BACKUP_CODE_DIGEST_LENGTH)
