"""Recording ad clicks."""

import re
from collections.abc import Mapping

from ..models import SUB_ID_PARAMS, Campaign, Click
from ..visitor import ConnectionType, parse_user_agent

# Sub ids (SUB_ID_PARAMS) are the ones trackers of every source kind use; anything else is ignored.
MAX_PARAM_LENGTH = 255
_PRINTABLE_CLICK_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


# A traffic source's macro it did not fill in ({clickid}, [zone], %%SUBID%%, ${sub}, ##zone##): no value.
_UNFILLED_MACRO = re.compile(r"\{+[^{}]*\}+|\[[A-Za-z_][\w.-]*\]|%+[A-Za-z_][\w-]*%+|\$\{[^}]*\}|#+[A-Za-z_]\w*#+")


def clean_param(value: str | None, limit: int = MAX_PARAM_LENGTH) -> str:
    """Strip control characters (NUL breaks PostgreSQL text) and cap the length. A macro the source left
    unfilled is no value: every such click would share one click id, and "{zoneid}" become a placement."""
    value = "".join(ch for ch in (value or "") if ch.isprintable()).strip()
    return "" if _UNFILLED_MACRO.fullmatch(value) else value[:limit]


def click_record(
    *,
    campaign: Campaign,
    params: Mapping[str, str],
    ip: str | None,
    user_agent: str,
    country: str,
    referrer: str,
) -> Click:
    """Store one click with what we know of the visitor, judged against the campaign's targeting."""
    source = campaign.traffic_source
    raw_click_id = clean_param(params.get(source.click_id_param), 128)
    click_kwargs = {"click_id": raw_click_id} if _PRINTABLE_CLICK_ID.match(raw_click_id) else {}

    visitor = parse_user_agent(user_agent or "")
    connection_type = clean_param(params.get("connection"), 16).lower()
    if connection_type not in ConnectionType.values:
        connection_type = ""
    carrier = clean_param(params.get("carrier"), 64)
    sub_ids = {name: value for name in SUB_ID_PARAMS if (value := clean_param(params.get(name)))}

    off_target = campaign.targeting_mismatches(
        country=country,
        device_type=visitor.device_type,
        os=visitor.os,
        carrier=carrier,
        connection_type=connection_type,
    )
    return Click.objects.create(
        campaign=campaign,
        traffic_source=source,
        offer_id=campaign.offer_id,
        sub_ids=sub_ids,
        ip=ip,
        user_agent=clean_param(user_agent, 1000),
        device_type=visitor.device_type,
        os=visitor.os,
        browser=visitor.browser,
        is_bot=visitor.is_bot,
        country=country,
        carrier=carrier,
        connection_type=connection_type,
        referrer=clean_param(referrer, 1000),
        off_target_reasons=off_target,
        **click_kwargs,
    )
