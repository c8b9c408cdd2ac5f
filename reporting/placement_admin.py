"""Traffic quality by placement (admin report page) and the per-source blacklist download.

Mounted by campaigns.admin_urls under /admin/reports/placements/; admin_view has already checked
that the user is staff.
"""

import datetime
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from campaigns.models import TrafficSource

from .selectors.placements import blacklisted_ids, percent_text, placement_blacklist, placement_quality
from .selectors.reports import DIMENSIONS, EARLIEST_DAY, LATEST_DAY, PLACEMENT_GROUPINGS

PERMISSION = "campaigns.view_dailystat"  # the one the campaign reports need: spend and revenue are in them
DEFAULT_DAYS = 30


class PlacementQualityForm(forms.Form):
    traffic_source = forms.ModelChoiceField(TrafficSource.objects.all())
    sub_id = forms.ChoiceField(
        label="Placement by",
        choices=[(name, DIMENSIONS[name].label) for name in PLACEMENT_GROUPINGS],
    )
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    date_to = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))

    def clean(self):
        super().clean()
        data = self.cleaned_data
        for name in ("date_from", "date_to"):
            if data.get(name) and not EARLIEST_DAY <= data[name] <= LATEST_DAY:
                self.add_error(name, f"Pick a date between {EARLIEST_DAY:%Y-%m-%d} and {LATEST_DAY:%Y-%m-%d}.")
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The period ends before it starts.")
        return data


def _defaults() -> dict[str, str]:
    today = timezone.localdate()
    return {
        "sub_id": "zone",
        "date_from": (today - datetime.timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        "date_to": today.isoformat(),
    }


def _bound_form(params) -> PlacementQualityForm:
    # A field left out or emptied takes its default, so a bookmarked ?traffic_source=3 keeps working.
    return PlacementQualityForm({**_defaults(), **{name: value for name, value in params.items() if value}})


def _check_permission(request) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def _query(cleaned: dict) -> str:
    return urlencode(
        {
            "traffic_source": cleaned["traffic_source"].pk,
            "sub_id": cleaned["sub_id"],
            "date_from": cleaned["date_from"].isoformat(),
            "date_to": cleaned["date_to"].isoformat(),
        }
    )


def _shown(row: dict) -> dict:
    """A row with its rates as percentages and its status in words."""
    if not row["judged"]:
        status = f"Not enough leads ({row['leads']}/{row['min_leads']})"
    elif row["flagged"]:
        status = "Flagged: " + "; ".join(row["flags"])
        if row["placement"] is None:
            status += " (no id to blacklist)"
    elif not row["thresholds_set"]:
        status = "Judged: the campaign sets no thresholds"
    else:
        status = "Judged"
    return {
        **row,
        "validity_percent": "—" if row["validity_rate"] is None else percent_text(row["validity_rate"] * 100),
        "conversion_percent": "—" if row["conversion_rate"] is None else percent_text(row["conversion_rate"] * 100),
        "status": status,
    }


def placement_quality_view(request):
    _check_permission(request)
    # The first visit shows the form with its defaults, not "This field is required".
    form = _bound_form(request.GET) if "traffic_source" in request.GET else PlacementQualityForm(initial=_defaults())
    rows = blacklist = download_url = None
    if form.is_bound and form.is_valid():
        rows = placement_quality(**form.cleaned_data)
        blacklist = blacklisted_ids(rows)
        download_url = f"{reverse('placement-blacklist')}?{_query(form.cleaned_data)}"
        rows = [_shown(row) for row in rows]
    context = {
        **admin.site.each_context(request),
        "title": "Traffic quality by placement",
        "form": form,
        "rows": rows,
        "sub_id_label": DIMENSIONS[form.cleaned_data["sub_id"]].label if rows is not None else "",
        "flagged_count": sum(row["flagged"] for row in rows or []),
        "blacklist": blacklist,
        "download_url": download_url,
    }
    return TemplateResponse(request, "admin/reporting/placements/quality.html", context)


def placement_blacklist_download(request):
    _check_permission(request)
    form = _bound_form(request.GET)
    if not form.is_valid():
        problems = "; ".join(
            f"{name}: {' '.join(str(message) for message in messages)}" for name, messages in form.errors.items()
        )
        return HttpResponseBadRequest(f"No blacklist: {problems}\n".encode(), content_type="text/plain; charset=utf-8")
    ids = placement_blacklist(**form.cleaned_data)
    source, sub_id = form.cleaned_data["traffic_source"], form.cleaned_data["sub_id"]
    filename = "-".join(
        (
            "blacklist",
            slugify(source.name) or f"source-{source.pk}",
            sub_id,
            form.cleaned_data["date_from"].isoformat(),
            form.cleaned_data["date_to"].isoformat(),
        )
    )
    # One id per line and nothing else: what traffic sources take in their placement blacklists.
    return HttpResponse(
        "".join(f"{placement}\n" for placement in ids),
        content_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": content_disposition_header(as_attachment=True, filename=f"{filename}.txt")},
    )
