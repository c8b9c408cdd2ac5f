from django import template

from leads.selectors import can_see_all_leads, escalated_leads, follow_ups_due

register = template.Library()


@register.inclusion_tag("admin/leads/dashboard.html", takes_context=True)
def lead_dashboard(context):
    user = context["request"].user
    return {
        "follow_ups": list(follow_ups_due(user=user)) if user.has_perm("leads.view_lead") else [],
        "escalations": list(escalated_leads())
        if can_see_all_leads(user) and user.has_perm("leads.assign_lead")
        else [],
        "can_view_leads": user.has_perm("leads.view_lead"),
    }
