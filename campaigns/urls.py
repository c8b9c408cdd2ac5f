from django.urls import path

from . import views

urlpatterns = [
    path("c/<slug:slug>/", views.track_click, name="track-click"),
]
