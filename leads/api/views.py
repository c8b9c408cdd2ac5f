"""Partner API views: check the request's shape, call one service or selector, shape the answer."""

import logging
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db import DataError, IntegrityError, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.models import Advertiser, Campaign, LandingPage
from campaigns.services import advertiser_for_postback_token
from leadcrm.api_errors import ErrorSerializer, error_body
from leadcrm.errors import ApplicationError, NotFound

from ..filters import LeadFilter
from ..models import ApiScope, BuyerSuppression, Lead, Partner
from ..selectors import (
    campaigns_for_api,
    can_work_lead,
    lead_list_for_api,
    lead_list_for_buyer,
    statement,
    suppression_counts,
)
from ..services.idempotency import MAX_KEY_LENGTH, idempotent
from ..services.inbound_ping import supplier_ping
from ..services.intake import api_lead_submit
from ..services.outcomes import advertiser_postback_apply, lead_record_outcome
from ..services.suppression import buyer_suppression_add, buyer_suppression_remove
from ..signals import personal_data_read
from .authentication import PartnerPrincipal
from .parsers import JSONParser
from .permissions import HasScope
from .serializers import (
    BatchInputSerializer,
    BatchResultSerializer,
    CampaignSerializer,
    LeadInputSerializer,
    LeadResultSerializer,
    LeadSerializer,
    OutcomeInputSerializer,
    OutcomeSerializer,
    PartnerLeadSerializer,
    PingInputSerializer,
    PingResultSerializer,
    PostbackSerializer,
    StatementQuerySerializer,
    StatementSerializer,
    SuppressionAddedSerializer,
    SuppressionCountSerializer,
    SuppressionHashesSerializer,
    SuppressionRemovedSerializer,
    lead_result,
)
from .throttling import PostbackIpThrottle

logger = logging.getLogger(__name__)
REFUSED_BY_DATABASE = "The database refused this lead, so it was not stored (the others were); we have it in our log."

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    # An empty header is no key; a blank one is refused.
    {"type": "string", "maxLength": MAX_KEY_LENGTH, "pattern": "^(|.*\\S.*)$"},
    OpenApiParameter.HEADER,
    required=False,
    description="Repeat a request safely for 24 h: repeats return the first answer and create nothing.",
)

POSTBACK_RESPONSES = {
    201: OutcomeSerializer,
    200: OpenApiResponse(OutcomeSerializer, description="The same reference was reported before; nothing changed."),
    401: OpenApiResponse(ErrorSerializer, description="No postback token, or an unknown one."),
    404: OpenApiResponse(ErrorSerializer, description="No lead of this advertiser has that click id or lead id."),
    409: OpenApiResponse(ErrorSerializer, description="The reference was already used for another outcome."),
}


def _partner(request: Request) -> Partner | None:
    return request.user.partner if isinstance(request.user, PartnerPrincipal) else None


def _sandbox(request: Request) -> bool:
    return isinstance(request.user, PartnerPrincipal) and request.user.api_key.is_sandbox


def _staff_user(request: Request) -> User | None:
    """The user calling with a session or token; None for a partner's key."""
    return request.user if isinstance(request.user, User) else None


def _staff_read(request: Request, kind: str, *, lead: Lead | None = None, rows: int | None = None) -> None:
    """A staff member read leads' personal data over the API: the access log records it (partners read
    their own leads, which is not staff access)."""
    if (user := _staff_user(request)) is not None:
        personal_data_read.send(sender=Lead, user=user, kind=kind, path=request.path, lead=lead, rows=rows)


def _lead_answer(request: Request, data: object, idempotency_key: str = "") -> tuple[int, dict[str, Any]]:
    result = api_lead_submit(
        data=data,
        partner=_partner(request),
        sandbox=_sandbox(request),
        actor=_staff_user(request),
        idempotency_key=idempotency_key,
    )
    body = lead_result(result.lead, partner=_partner(request))
    return (status.HTTP_201_CREATED if result.created else status.HTTP_200_OK), body


class LeadPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                # DRF takes what is not a whole number from 1 as the default, and caps the rest.
                parameter["schema"] = {"type": "string"}
                parameter["description"] = (
                    f"Leads per page: 1 to {self.max_page_size} (more gives {self.max_page_size}); "
                    f"any other value gives {self.page_size}."
                )
        return parameters


class LeadListCreateView(generics.ListAPIView[Lead]):
    """Leads you sent (suppliers) or that were sold to you (buyers); POST submits one lead."""

    permission_classes = [HasScope]
    parser_classes = [JSONParser]
    required_scopes = {"GET": ApiScope.LEADS_READ, "POST": ApiScope.LEADS_WRITE}
    serializer_class = LeadSerializer
    pagination_class = LeadPagination
    filterset_class = LeadFilter

    def get_queryset(self) -> QuerySet[Lead]:
        return lead_list_for_api(user=self.request.user)

    def get_serializer_class(self) -> type[LeadSerializer]:
        return PartnerLeadSerializer if _partner(self.request) else LeadSerializer

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "partner": _partner(self.request)}

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().list(request, *args, **kwargs)
        _staff_read(request, "api_lead_list", rows=len(response.data["results"]))
        return response

    @extend_schema(
        request=LeadInputSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: LeadResultSerializer,
            200: OpenApiResponse(LeadResultSerializer, description="The lead already existed for this key."),
            409: OpenApiResponse(
                ErrorSerializer,
                description="The same Idempotency-Key is still being processed (code conflict); or the lead's "
                "`ping_id` price no longer holds (code ping_unknown, ping_refused, ping_used, ping_expired or "
                "ping_mismatch; `fields.ping_id` says why) and nothing was stored.",
            ),
            422: OpenApiResponse(ErrorSerializer, description="The Idempotency-Key was used with another body."),
        },
    )
    def post(self, request: Request) -> Response:
        # parse_submission (in api_lead_submit) checks the body; LeadInputSerializer only describes it.
        key, partner = request.headers.get("Idempotency-Key"), _partner(request)
        if not key:
            code, body = _lead_answer(request, request.data)
            return Response(body, status=code)
        code, body, replayed = idempotent(
            partner=partner,
            user=_staff_user(request),
            key=key,
            sandbox=_sandbox(request),
            data=request.data,
            handler=lambda request_key: _lead_answer(request, request.data, idempotency_key=request_key),
        )
        return Response(body, status=code, headers={"Idempotent-Replayed": "true"} if replayed else None)


class LeadBatchView(APIView):
    permission_classes = [HasScope]
    parser_classes = [JSONParser]
    required_scope = ApiScope.LEADS_WRITE

    @extend_schema(request=BatchInputSerializer, responses=BatchResultSerializer)
    def post(self, request: Request) -> Response:
        """Up to 1000 leads; one result per item, in order. A bad item does not stop the others."""
        batch = BatchInputSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        results: list[dict[str, Any]] = []
        counts = {"created": 0, "duplicates": 0, "rejected": 0}
        for index, item in enumerate(batch.validated_data["leads"]):
            try:
                _, body = _lead_answer(request, item)  # its field errors as POST /leads/ reports them
            except (ApplicationError, DataError, IntegrityError) as error:
                counts["rejected"] += 1
                if not isinstance(error, ApplicationError):
                    # A lead the database refused (its transaction rolled back) must not lose the others'
                    # answers: the partner learns which one, and we read why in the log (no values in it).
                    logger.error("Batch item %s not stored: the database refused it (%s)", index, type(error).__name__)
                    error = ApplicationError(REFUSED_BY_DATABASE, code="unprocessable")
                results.append(
                    {
                        "index": index,
                        "outcome": "rejected",
                        "lead": None,
                        **error_body(error.code or "invalid", error.message, error.extra),
                    }
                )
                continue
            outcome = "duplicate" if body["duplicate"] else "created"
            counts["duplicates" if body["duplicate"] else "created"] += 1
            results.append({"index": index, "outcome": outcome, "lead": body, "error": None})
        return Response({**counts, "results": results})


class LeadDetailView(generics.RetrieveAPIView[Lead]):
    permission_classes = [HasScope]
    required_scope = ApiScope.LEADS_READ
    serializer_class = LeadSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "lead_id"

    def get_queryset(self) -> QuerySet[Lead]:
        return lead_list_for_api(user=self.request.user)

    def get_serializer_class(self) -> type[LeadSerializer]:
        return PartnerLeadSerializer if _partner(self.request) else LeadSerializer

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "partner": _partner(self.request)}

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        lead = self.get_object()
        _staff_read(request, "api_lead_detail", lead=lead)
        return Response(self.get_serializer(lead).data)


class LeadOutcomeView(APIView):
    permission_classes = [HasScope]
    parser_classes = [JSONParser]
    required_scope = ApiScope.OUTCOMES_WRITE

    @extend_schema(
        request=OutcomeInputSerializer,
        responses={
            201: OutcomeSerializer,
            200: OpenApiResponse(OutcomeSerializer, description="Reported before with this external_reference."),
            409: OpenApiResponse(ErrorSerializer, description="The external_reference was used for another outcome."),
        },
    )
    def post(self, request: Request, lead_id: UUID) -> Response:
        """Report contacted, converted (with the sale) or returned (within the offer's return window)."""
        partner = _partner(request)
        # Outcomes come from buyers about leads sold to them; a supplier never reports on its own leads.
        leads = lead_list_for_buyer(partner=partner) if partner else lead_list_for_api(user=request.user)
        lead = get_object_or_404(leads.select_related("offer"), public_id=lead_id)
        if partner is None and not can_work_lead(user=request.user, lead=lead):
            raise PermissionDenied("Only the rep working this lead, or a manager, may report its outcome.")
        data = OutcomeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        with transaction.atomic():
            outcome, created = lead_record_outcome(
                lead=lead,
                partner=partner,
                kind=values["outcome"],
                external_reference=values.get("external_reference", ""),
                sale_amount=values.get("sale_amount"),
                currency=values.get("currency", ""),
                return_reason=values.get("reason", ""),
                note=values.get("note", ""),
                user=_staff_user(request),  # a manager's report is theirs, not a postback
            )
        outcome.lead.refresh_from_db()
        body = OutcomeSerializer(outcome, context={"partner": partner}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CampaignListView(generics.ListAPIView[Campaign]):
    """The campaigns this key may post leads to, with their landing and tracking URLs."""

    permission_classes = [HasScope]
    required_scope = ApiScope.CAMPAIGNS_READ
    serializer_class = CampaignSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Campaign]:
        # Each row's landing URL needs its first landing page: fetched in the same query, not one per row.
        first_page = (
            LandingPage.objects.filter(campaign=OuterRef("pk"), is_active=True)
            .order_by("position", "id")
            .values("slug")[:1]
        )
        return (
            campaigns_for_api(user=self.request.user).annotate(first_landing_slug=Subquery(first_page)).order_by("slug")
        )


class StatementView(APIView):
    """A partner's own money: a buyer's purchases, returns, commissions and payments; a supplier's payouts
    earned, reversed and paid, and what is payable now. Opening and closing balances reconcile with the
    ledger."""

    permission_classes = [HasScope]
    required_scope = ApiScope.REPORTS_READ

    @extend_schema(
        parameters=[StatementQuerySerializer],
        responses={
            200: StatementSerializer,
            404: OpenApiResponse(ErrorSerializer, description="The partner has no account on the side asked for."),
        },
    )
    def get(self, request: Request) -> Response:
        partner = _partner(request)
        if partner is None:
            raise PermissionDenied("Statements over the API are for partners; staff use the admin's statements.")
        query = StatementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        side = query.validated_data.get("side") or ("buyer" if partner.role == Partner.Role.BUYER else "supplier")
        if side == "buyer" and (not partner.is_buyer or partner.advertiser_id is None):
            raise NotFound("This partner has no buyer account.")
        if side == "supplier" and not partner.is_supplier:
            raise NotFound("This partner is not a supplier.")
        found = statement(
            advertiser=partner.advertiser if side == "buyer" else None,
            partner=partner if side == "supplier" else None,
            currency=query.validated_data["currency"],
            date_from=query.validated_data["date_from"],
            date_to=query.validated_data["date_to"],
        )
        return Response(StatementSerializer({**found, "side": side}).data)


class AdvertiserPostbackView(APIView):
    """Conversions reported server to server by an advertiser, authenticated by its secret token."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [PostbackIpThrottle]
    parser_classes = [JSONParser, FormParser]  # advertisers' servers often post form fields

    @extend_schema(parameters=[PostbackSerializer], responses=POSTBACK_RESPONSES)
    def get(self, request: Request) -> Response:
        return self._apply(request.query_params)

    @extend_schema(request=PostbackSerializer, responses=POSTBACK_RESPONSES)
    def post(self, request: Request) -> Response:
        return self._apply(request.data)

    def _apply(self, params: Any) -> Response:
        # Who is calling comes first: a stranger learns nothing about which fields are wrong.
        if not hasattr(params, "get"):
            return Response(error_body("parse_error", "Send the postback as fields or a JSON object."), status=400)
        # The header keeps the secret out of access logs; the query parameter is for trackers that
        # can only build URLs.
        token = self.request.headers.get("X-Postback-Token") or params.get("token")
        advertiser = advertiser_for_postback_token(token) if isinstance(token, str) else None
        if advertiser is None:
            return Response(
                error_body("authentication_failed", "Unknown postback token."), status=status.HTTP_401_UNAUTHORIZED
            )
        data = PostbackSerializer(data=params)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        outcome, created = advertiser_postback_apply(
            advertiser=advertiser,
            click_id=values.get("click_id", ""),
            lead_public_id=values.get("lead_id"),
            status=values["status"],
            payout=values.get("payout"),
            reference=values.get("reference", ""),
        )
        outcome.lead.refresh_from_db()  # the service changed the lead through another instance
        return Response(
            OutcomeSerializer(outcome).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class PingView(APIView):
    """What we pay you for a lead, asked before you send it: its non-identifying fields in, a price
    (with a ping id that holds for INBOUND_PING_SECONDS) or a refusal with its reason out."""

    permission_classes = [HasScope]
    parser_classes = [JSONParser]
    required_scope = ApiScope.LEADS_WRITE  # the same key that posts the lead

    @extend_schema(
        request=PingInputSerializer,
        responses={
            200: OpenApiResponse(
                PingResultSerializer,
                description="A price and its ping id (`accepted` true), or a refusal with its reason (`accepted` "
                "false). Post the lead with `ping_id` to be paid that price: a post whose ping has expired, was "
                "used, was another supplier's or does not match the lead's campaign, country or lead type is "
                "refused with 409 (codes ping_unknown, ping_refused, ping_used, ping_expired, ping_mismatch) and "
                "nothing is stored.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        partner = _partner(request)
        if partner is None:
            raise PermissionDenied("Pings are a supplier's: call with the supplier's API key.")
        ping = supplier_ping(data=request.data, partner=partner, sandbox=_sandbox(request))
        return Response(PingResultSerializer(ping).data)


def _buyer(request: Request) -> Advertiser:
    """The advertiser whose suppression list the calling buyer keeps; 404 for anyone else."""
    partner = _partner(request)
    if partner is None:
        raise PermissionDenied("Suppression lists over the API are a buyer's; staff use the admin.")
    if not partner.is_buyer or partner.advertiser is None:
        raise NotFound("This partner has no buyer account.")
    return partner.advertiser


def _hashes(request: Request) -> dict[str, list[str]]:
    data = SuppressionHashesSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return {
        BuyerSuppression.Kind.EMAIL: data.validated_data.get("email_hashes", []),
        BuyerSuppression.Kind.PHONE: data.validated_data.get("phone_hashes", []),
    }


class BuyerSuppressionView(APIView):
    """Your suppression list: hashed emails and phones of people you never want to be sent (your
    customers, your do-not-contact list). A lead matching one is never sent to you."""

    permission_classes = [HasScope]
    parser_classes = [JSONParser]
    required_scope = ApiScope.SUPPRESSION_WRITE

    @extend_schema(responses={200: SuppressionCountSerializer, 404: ErrorSerializer})
    def get(self, request: Request) -> Response:
        """How many hashes your list holds."""
        counts = suppression_counts(advertiser_id=_buyer(request).pk)
        return Response({"emails": counts[BuyerSuppression.Kind.EMAIL], "phones": counts[BuyerSuppression.Kind.PHONE]})

    @extend_schema(
        request=SuppressionHashesSerializer,
        responses={200: SuppressionAddedSerializer, 404: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        """Add hashes to your list. Sending one already listed changes nothing; one that is not a
        SHA-256 hash refuses the whole call (400, nothing added)."""
        advertiser = _buyer(request)
        return Response({"added": buyer_suppression_add(advertiser=advertiser, hashes_by_kind=_hashes(request))})


class BuyerSuppressionRemoveView(APIView):
    permission_classes = [HasScope]
    parser_classes = [JSONParser]
    required_scope = ApiScope.SUPPRESSION_WRITE

    @extend_schema(
        request=SuppressionHashesSerializer,
        responses={200: SuppressionRemovedSerializer, 404: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        """Take hashes off your list."""
        advertiser = _buyer(request)
        return Response({"removed": buyer_suppression_remove(advertiser=advertiser, hashes_by_kind=_hashes(request))})
