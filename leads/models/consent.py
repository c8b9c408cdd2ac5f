"""Consent certificates: the evidence of what a visitor saw and sent on a landing page or quiz.

A certificate is written in the lead's capture transaction and never changed afterwards, except by
erasure, which blanks the visitor's IP and user agent. Its SHA-256 is taken over a canonical form
(leads/services/consent.py) that holds keyed digests of the IP and user agent rather than the values,
so an erased certificate still verifies.
"""

import uuid

from django.db import models
from django.utils import timezone

from campaigns.models import LandingPage


class ConsentCertificate(models.Model):
    """What one landing-page or quiz submission showed and sent, with the SHA-256 over it."""

    # Public: the certificate's address (/consent/<public_id>/) that buyers receive; a random UUID,
    # so the addresses of other people's certificates cannot be guessed from one.
    public_id = models.UUIDField("ID", default=uuid.uuid4, unique=True, editable=False)
    landing_page = models.ForeignKey(
        LandingPage, null=True, blank=True, on_delete=models.SET_NULL, related_name="consent_certificates"
    )
    # The page as it was: its slug, name and kind are copied, as a later edit must not rewrite them.
    page_slug = models.CharField(max_length=80)
    page_name = models.CharField(max_length=160)
    page_kind = models.CharField(max_length=10)
    consent_version = models.CharField(max_length=40, blank=True)
    consent_text = models.TextField(blank=True, help_text="Exactly as shown next to the checkbox.")
    consent_text_sha256 = models.CharField("consent text SHA-256", max_length=64)
    consent_given = models.BooleanField(help_text="The visitor ticked the consent checkbox.")
    form_shown_at = models.DateTimeField(
        null=True, blank=True, help_text="When we last showed the form; empty if its signed state was missing."
    )
    submitted_at = models.DateTimeField(default=timezone.now)
    fields_submitted = models.JSONField(default=list, help_text="Names of the fields sent with a value.")
    ip = models.GenericIPAddressField("IP", null=True, blank=True)
    user_agent = models.TextField(blank=True)
    # HMAC-SHA256 of the IP and of the user agent keyed with visitor_key: the canonical form holds
    # these, not the values. Erasure drops the values and the key, which leaves the digests unlinkable.
    visitor_key = models.CharField(max_length=64, blank=True)
    ip_digest = models.CharField("IP digest", max_length=64, blank=True)
    user_agent_digest = models.CharField(max_length=64, blank=True)
    sha256 = models.CharField("SHA-256", max_length=64, help_text="Over the canonical form of the whole.")
    erased_at = models.DateTimeField(null=True, blank=True, help_text="When the IP and user agent were erased.")

    class Meta:
        ordering = ["-submitted_at", "-id"]

    def __str__(self) -> str:
        return f"Consent certificate {self.public_id}"
