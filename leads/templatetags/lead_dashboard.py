from django import template

from leads.selectors import can_see_all_leads, escalated_leads, follow_ups_due, sales_queue, sales_queue_counts

register = template.Library()
QUEUE_ON_DASHBOARD = 10  # the rest is one "see all" click away, in the lead list


@register.inclusion_tag("admin/leads/dashboard.html", takes_context=True)
def lead_dashboard(context):
    user = context["request"].user
    # Reps (who work leads, not campaigns) get their queue; marketing and managers get the campaign dashboard.
    works_leads = user.has_perm("leads.change_lead") and not user.has_perm("campaigns.view_dailystat")
    return {
        "queue": list(sales_queue(user=user, limit=QUEUE_ON_DASHBOARD)) if works_leads else [],
        "queue_counts": sales_queue_counts(user=user) if works_leads else None,
        "follow_ups": list(follow_ups_due(user=user)) if user.has_perm("leads.change_lead") else [],
        "escalations": list(escalated_leads())
        if can_see_all_leads(user) and user.has_perm("leads.assign_lead")
        else [],
        # Follow-ups are for those who work leads; marketing only reads them.
        "can_view_leads": user.has_perm("leads.change_lead"),
    }
