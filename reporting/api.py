"""The report API: check the query's shape, call the report selector, shape the answer."""

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leads.api.authentication import PartnerPrincipal
from leads.api.permissions import HasScope
from leads.models import ApiScope, Lead
from leads.selectors import can_see_all_leads, lead_list, lead_list_for_api

from .selectors import report
from .serializers import ReportQuerySerializer, ReportSerializer


def _report_leads(user: User | AnonymousUser | PartnerPrincipal) -> QuerySet[Lead] | None:
    if isinstance(user, PartnerPrincipal):
        return lead_list_for_api(user=user)
    return None if can_see_all_leads(user) else lead_list(user=user)


class ReportView(APIView):
    permission_classes = [HasScope]
    required_scope = ApiScope.REPORTS_READ

    @extend_schema(parameters=[ReportQuerySerializer], responses=ReportSerializer)
    def get(self, request: Request) -> Response:
        """Lead metrics per group and date range; money metrics (revenue, cost, margin, CPL, ROI...) for staff
        only."""
        partner = request.user.partner if isinstance(request.user, PartnerPrincipal) else None
        query = ReportQuerySerializer(data=request.query_params, context={"partner": partner})
        query.is_valid(raise_exception=True)
        rows = report(
            date_from=query.validated_data["date_from"],
            date_to=query.validated_data["date_to"],
            group_by=query.validated_data["group_by"],
            leads=_report_leads(request.user),
            # Money is the company's: staff who may see spend (marketing, managers), never partners.
            # Spend covers every lead, so it is shown only beside every lead, never a rep's share of them.
            include_money=partner is None
            and request.user.has_perm("campaigns.view_dailystat")
            and can_see_all_leads(request.user),
        )
        return Response(ReportSerializer({**query.validated_data, "rows": rows}).data)
