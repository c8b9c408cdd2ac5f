from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from campaigns.models import Campaign
from leadcrm.errors import ApplicationError
from leads.models import ApiScope, Partner
from leads.services.partners import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for a partner (created if missing). The key is printed alone on the last "
        "line; it is stored only as a hash and never shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="The partner's name.")
        parser.add_argument("--role", choices=Partner.Role.values, default=Partner.Role.SUPPLIER)
        parser.add_argument("--scopes", required=True, help=f"Comma-separated: {','.join(ApiScope.values)}.")
        parser.add_argument("--campaign", action="append", default=[], help="Campaign slug it may post to; repeat.")
        parser.add_argument("--sandbox", action="store_true", help="Test key: leads are marked test.")
        parser.add_argument("--key-name", default="", help="What the key is for, e.g. production.")

    @transaction.atomic
    def handle(self, *args, name, role, scopes, campaign, sandbox, key_name, **options):
        slugs = list(dict.fromkeys(campaign))
        campaigns = list(Campaign.objects.filter(slug__in=slugs))
        missing = sorted(set(slugs) - {item.slug for item in campaigns})
        if missing:
            raise CommandError(f"No campaign with slug: {', '.join(missing)}.")
        partner, created = Partner.objects.get_or_create(name=name, defaults={"role": role})
        if not created and partner.role != role:
            self.stderr.write(f"Partner {name!r} exists with role {partner.role}; keeping that role.")
        partner.campaigns.add(*campaigns)
        try:
            key, raw_key = api_key_create(
                partner=partner,
                scopes=[scope.strip() for scope in scopes.split(",") if scope.strip()],
                name=key_name,
                sandbox=sandbox,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            f"{'Created' if created else 'Found'} partner {partner.name} ({partner.get_role_display()}); "
            f"key {key.prefix}… with scopes {', '.join(key.scopes)}{' (sandbox)' if sandbox else ''}. "
            "Store the key now; it is not shown again:"
        )
        self.stdout.write(raw_key)
