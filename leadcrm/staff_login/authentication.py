"""DRF's token authentication, looking a staff token up by its digest (leadcrm/staff_login/tokens.py)."""

from typing import Any

from rest_framework.authentication import TokenAuthentication

from .tokens import staff_token_digest


class DigestTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        return super().authenticate_credentials(staff_token_digest(key))
