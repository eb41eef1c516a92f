"""The /api/v1/ router. Each app contributes an ``api_urls`` module with its own ``urlpatterns``."""

from importlib.util import find_spec

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.api_urls")),
]

# Apps whose API is written by colleagues in parallel: included once their module exists.
for _module in ("projects.api_urls", "analysis.api_urls"):
    if find_spec(_module) is not None:
        urlpatterns.append(path("", include(_module)))
