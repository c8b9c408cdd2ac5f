from django.urls import path

from . import views

urlpatterns = [
    path("l/<slug:slug>/", views.landing_page, name="landing-page"),
    path("l/<slug:slug>/thanks/", views.thank_you, name="landing-thanks"),
    path("privacy/", views.privacy_policy, name="privacy-policy"),
]
