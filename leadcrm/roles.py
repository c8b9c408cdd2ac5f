"""The staff groups and what each may do; data migrations call sync_roles() to apply it.

Permissions are "app_label.codename". A model that does not exist yet is skipped, so later
migrations extend this table and call sync_roles() again.
"""

from django.contrib.auth.management import create_permissions

_CRUD = ("add", "change", "delete", "view")
_CAMPAIGN_MODELS = ("trafficsource", "advertiser", "offer", "campaign", "landingpage", "quizquestion", "dailystat")
_SCHEDULE_MODELS = ("periodictask", "intervalschedule", "crontabschedule", "clockedschedule", "solarschedule")


def _all(app_label: str, models: tuple[str, ...], actions=_CRUD) -> list[str]:
    return [f"{app_label}.{action}_{model}" for model in models for action in actions]


_LEAD_ADMIN_MODELS = ("qualificationrule", "blockedemaildomain")
_LEAD_WORK_MODELS = ("lead", "leadnote", "calllog")
_DELIVERY_MODELS = ("deliverydestination", "deliveryroute")
_NURTURE_MODELS = ("flow", "flowstep", "enrollment", "suppression", "audience")
_DELIVERY_LOG_MODELS = (
    "delivery",
    "postback",
    "deliveryattempt",
    "helddelivery",
    "webhooksecret",
    "partnernotification",
    "auction",
    "auctionbid",
)

ROLE_PERMISSIONS: dict[str, list[str]] = {
    # Media buyers and affiliate managers: set up and run campaigns, import spend, edit schedules.
    "Marketing": [
        *_all("campaigns", _CAMPAIGN_MODELS),
        "campaigns.view_click",
        *_all("django_celery_beat", _SCHEDULE_MODELS),
        # Marketing sees every lead and judges sources by them, but does not work them.
        *_all("leads", ("lead", "leadevent", "leadnote", "calllog", "outboxentry", "salesrepprofile"), ("view",)),
        *_all("leads", _LEAD_ADMIN_MODELS),
        "leads.add_leadimport",
        "leads.view_leadimport",
        "leads.export_lead",
        "leads.view_all_leads",
        *_all("leads", ("partner", "leadoutcome"), ("view",)),
        # Who buys which leads is set by managers; marketing watches deliveries and postbacks.
        *_all("leads", (*_DELIVERY_MODELS, *_DELIVERY_LOG_MODELS), ("view",)),
        *_all("leads", ("supplierping", "buyersuppression"), ("view",)),
        # Marketing builds and runs the nurture flows.
        *_all("nurture", _NURTURE_MODELS),
        "nurture.view_nurturemessage",
        "nurture.view_audienceexport",
    ],
    # Sales reps: read what a lead came from; they do not change campaigns.
    "Sales": [
        *_all("campaigns", ("campaign", "offer", "advertiser", "landingpage", "trafficsource"), ("view",)),
        # Which leads a rep sees is narrowed to their own and the unassigned queue in the admin.
        "leads.view_lead",
        "leads.change_lead",
        "leads.view_leadevent",
        *_all("leads", ("leadnote", "calllog"), ("add", "view")),
    ],
    # Team leads: everything marketing does, plus seeing who works in the team.
    "Managers": [
        *_all("campaigns", _CAMPAIGN_MODELS),
        "campaigns.view_click",
        *_all("django_celery_beat", _SCHEDULE_MODELS),
        "auth.view_user",
        "auth.view_group",
        *_all("leads", (*_LEAD_WORK_MODELS, *_LEAD_ADMIN_MODELS, "salesrepprofile")),
        *_all("leads", ("leadevent", "outboxentry"), ("view",)),
        "leads.add_leadimport",
        "leads.view_leadimport",
        "leads.assign_lead",
        "leads.export_lead",
        "leads.view_all_leads",
        # A person's request to be forgotten is handled by a manager.
        "leads.erase_lead",
        # And a person's request to see what we hold about them (the access request export).
        "leads.export_person_data",
        # Onboarding partners and their keys is a manager's call.
        *_all("leads", ("partner", "apikey", "leadoutcome"), ("add", "change", "view")),
        # Buyers' destinations and routes, and redelivering what failed.
        *_all("leads", _DELIVERY_MODELS, ("add", "change", "view")),
        *_all("leads", _DELIVERY_LOG_MODELS, ("change", "view")),
        # A buyer's suppression list, uploaded for buyers without the API; suppliers' pings to read.
        *_all("leads", ("buyersuppression",), ("add", "delete", "view")),
        "leads.view_supplierping",
        *_all("nurture", (*_NURTURE_MODELS, "nurturemessage"), ("view",)),
        # Who changed what (the audit trail) and who read whose personal data (the access log).
        "auditlog.view_logentry",
        "audit.view_accesslogentry",
    ],
}


def sync_roles(apps, schema_editor=None) -> None:
    """Create the groups and set each one's permissions to exactly ROLE_PERMISSIONS."""
    for app_config in apps.get_app_configs():
        # Permissions are normally made after all migrations; data migrations need them now.
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = []
        for dotted in wanted:
            app_label, codename = dotted.split(".")
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is not None:
                permissions.append(permission)
        group.permissions.set(permissions)
