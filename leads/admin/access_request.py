"""The "Access request" admin page: a manager downloads, as JSON, everything held about one person.

Mounted by leadcrm.urls under /admin/access-request/; admin_view has already checked the user is staff.
"""

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

from leadcrm.errors import InvalidInput

from ..forms import country_choices
from ..models import Lead
from ..services.access_request import access_request_export
from ..signals import personal_data_read

PERMISSION = "leads.export_person_data"


class AccessRequestForm(forms.Form):
    email = forms.CharField(required=False, max_length=254, widget=forms.EmailInput)
    phone = forms.CharField(
        required=False, max_length=40, help_text="With + and the country code, or pick the country."
    )
    country = forms.ChoiceField(required=False, choices=country_choices, help_text="For a phone number without +.")


def access_request_view(request):
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    form = AccessRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            document = access_request_export(**form.cleaned_data)
        except InvalidInput as error:
            form.add_error(None, error.message)
        else:
            # Who asked for a person's whole file goes to the access log like any other export.
            personal_data_read.send(
                sender=Lead, user=request.user, kind="access_request", path=request.path, rows=len(document["leads"])
            )
            body = json.dumps(document, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
            response = HttpResponse(body, content_type="application/json; charset=utf-8")
            file_name = f"access-request-{timezone.localdate():%Y-%m-%d}.json"
            response["Content-Disposition"] = content_disposition_header(True, file_name) or "attachment"
            return response
    context = {**admin.site.each_context(request), "title": "Access request", "form": form}
    return TemplateResponse(request, "admin/leads/access_request.html", context)
