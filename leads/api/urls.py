from django.urls import path

from . import views

urlpatterns = [
    path("leads/", views.LeadListCreateView.as_view(), name="api-leads"),
    path("leads/batch/", views.LeadBatchView.as_view(), name="api-leads-batch"),
    path("leads/<uuid:lead_id>/", views.LeadDetailView.as_view(), name="api-lead"),
    path("leads/<uuid:lead_id>/outcome/", views.LeadOutcomeView.as_view(), name="api-lead-outcome"),
    path("campaigns/", views.CampaignListView.as_view(), name="api-campaigns"),
    path("statement/", views.StatementView.as_view(), name="api-statement"),
    path("ping/", views.PingView.as_view(), name="api-ping"),
    path("buyer/suppression/", views.BuyerSuppressionView.as_view(), name="api-buyer-suppression"),
    path("buyer/suppression/remove/", views.BuyerSuppressionRemoveView.as_view(), name="api-buyer-suppression-remove"),
]
