"""Limits on failed authentication: per client address for the API, per account and per address for sign-in.

DRF checks throttles only after authentication and permissions, so a request with a bad token, or an anonymous
request to a protected endpoint, is answered 401 before any throttle runs. The failed-authentication throttle is
therefore applied where every 401 passes: the API's exception handler (``neurox_site.api_errors``) counts each
401 against the client address and answers 429 once the address is over its rate. Sign-in forms (the site's and
the admin's) are limited by django-axes; its client address comes from :func:`client_address` too, so both
limits agree on who the client is.
"""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle


def client_address(request) -> str | None:
    """The client's IP address: REMOTE_ADDR, or the address ``NUM_PROXIES`` trusted proxies put in
    X-Forwarded-For (``NEUROX_NUM_PROXIES``; 0 by default, so a client cannot pick its own address)."""
    return BaseThrottle().get_ident(request)


class FailedAuthenticationThrottle(SimpleRateThrottle):
    """Counts requests answered 401 per client address (rate ``failed_auth``)."""

    scope = "failed_auth"

    def get_rate(self):
        # Read at use, not at import (SimpleRateThrottle.THROTTLE_RATES), so a changed setting takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}
