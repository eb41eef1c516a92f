"""The site's URLs plus views that fail on purpose, for the error-page tests."""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.urls import path

from neurox_site.urls import *  # noqa: F403 (the urlpatterns and the handler400…500 names)
from neurox_site.urls import urlpatterns as site_urlpatterns


@login_not_required
def broken(request):
    raise RuntimeError("secret internals: the database password is hunter2")


@login_not_required
def bad(request):
    raise BadRequest("The page number must be a whole number.")


@login_not_required
def suspicious(request):
    raise SuspiciousOperation("Attempted access to /etc/passwd denied.")


urlpatterns = [
    path("broken/", broken),
    path("api/broken/", broken),
    path("bad/", bad),
    path("suspicious/", suspicious),
    *site_urlpatterns,
]
