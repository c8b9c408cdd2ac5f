from django.urls import path

from . import views

urlpatterns = [
    path("o/<str:token>/", views.open_pixel, name="nurture-open"),
    path("c/<str:token>/", views.click, name="nurture-click"),
    path("u/<str:token>/", views.unsubscribe, name="nurture-unsubscribe"),
]
