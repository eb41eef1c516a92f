"""Top-level URLs. HTML pages need a login (LoginRequiredMiddleware) unless marked otherwise; the API lives
under /api/v1/ (see api_urls.py). Errors: styled pages for people, JSON under /api/ (errors.py)."""

from datetime import timedelta

from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from health_check.checks import Cache, Database, Storage
from health_check.contrib.celery import Ping
from health_check.views import HealthCheckView

from accounts import oidc
from accounts import views as account_views
from analysis.admin import operator_urls

urlpatterns = [
    path("", account_views.home, name="home"),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    # University sign-in (OpenID Connect; 404 while it is not configured). The callback is the redirect URI to
    # register at the provider: https://<host>/oidc/callback/
    path("oidc/authenticate/", login_not_required(oidc.SignInStartView.as_view()), name="oidc-start"),
    path("oidc/callback/", login_not_required(oidc.SignInCallbackView.as_view()), name="oidc-callback"),
    path("projects/", include("projects.urls")),
    path("projects/", include("analysis.urls")),
    *operator_urls(),  # the operator's page (admin → Operations), before the admin's own catch-all
    path("admin/", admin.site.urls),
    path("api/v1/", include("neurox_site.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "health/",
        login_not_required(HealthCheckView.as_view(checks=[Cache, Database, Storage])),
        name="health",
    ),
    # Apart from /health/, so that a stopped worker does not take the web servers out of a load balancer: fails
    # while any queue (gpu, cpu) has no live worker, naming the queue.
    path(
        "health/workers/",
        login_not_required(HealthCheckView.as_view(checks=[(Ping, {"timeout": timedelta(seconds=2)})])),
        name="health-workers",
    ),
]


handler400 = "neurox_site.errors.bad_request"
handler403 = "neurox_site.errors.permission_denied"
handler404 = "neurox_site.errors.page_not_found"
handler500 = "neurox_site.errors.server_error"
