"""The admin page that shows a new secret (an API key or token, a signing secret, a postback token)
the one time it exists in the clear: never kept by a browser's or a proxy's cache."""

from typing import Any

from django.contrib.admin import ModelAdmin
from django.http import HttpRequest
from django.template.response import TemplateResponse


def secret_shown_once(
    model_admin: "ModelAdmin[Any]", request: HttpRequest, template: str, *, title: str, **context: Any
) -> TemplateResponse:
    page = {**model_admin.admin_site.each_context(request), "title": title, "opts": model_admin.model._meta}
    response = TemplateResponse(request, template, {**page, **context})
    response["Cache-Control"] = "no-store"
    return response
