"""Links in nurture emails: open pixel, click redirect, one-click unsubscribe. Thin: services decide."""

import base64
import contextlib

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .services.engagement import message_clicked, message_opened, message_unsubscribe
from .services.tracking import BadLink, read_token

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@never_cache
def open_pixel(request, token):
    with contextlib.suppress(BadLink):  # a forged pixel records nothing but still gets an image
        message_opened(message_id=read_token("open", token))
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
def click(request, token):
    try:
        message_id, target = read_token("click", token)
    except BadLink:
        raise Http404("This link is not valid.") from None
    message_clicked(message_id=message_id)
    return HttpResponseRedirect(target)  # only the URL that was signed into the token


@csrf_exempt  # RFC 8058: mail clients POST without a form; the signed token is the authority
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    try:
        message_id = read_token("unsubscribe", token)
    except BadLink:
        return render(request, "nurture/unsubscribe.html", {"invalid": True}, status=400)
    if request.method == "POST":
        email = message_unsubscribe(message_id=message_id)
        return render(request, "nurture/unsubscribe.html", {"done": True, "email": email})
    return render(request, "nurture/unsubscribe.html", {"confirm": True})
