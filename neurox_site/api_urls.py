"""The /api/v1/ router. Each app contributes an ``api_urls`` module with its own ``urlpatterns``."""

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.api_urls")),
    path("", include("projects.api_urls")),
    path("", include("analysis.api_urls")),
]
