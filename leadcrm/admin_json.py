"""Read-only JSON fields in the admin, drawn as indented text.

Unfold colours them with Pygments (when it is installed, as in development), whose output is all
style attributes, which the Content-Security-Policy refuses. templates/unfold/helpers/
field_readonly_value.html uses this filter for them instead.
"""

import json
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.filter
def json_block(readonly_field: Any) -> SafeString | str:
    field, _attribute, value = readonly_field.resolved_field
    if value is None:
        return "-"
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, cls=field.encoder or DjangoJSONEncoder)
    return format_html('<pre class="lc-json">{}</pre>', text)
