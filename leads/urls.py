from django.urls import path

from . import consent_views, views

urlpatterns = [
    path("l/<slug:slug>/", views.landing_page, name="landing-page"),
    path("l/<slug:slug>/thanks/", views.thank_you, name="landing-thanks"),
    path("privacy/", views.privacy_policy, name="privacy-policy"),
    path("consent/<uuid:certificate_id>/", consent_views.consent_certificate, name="consent-certificate"),
]
