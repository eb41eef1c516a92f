"""University sign-in: OpenID Connect (authorization code + PKCE) through mozilla-django-oidc.

What this adds to the library, and why:

* **Discovery, lazily.** The endpoints come from ``<issuer>/.well-known/openid-configuration`` (or explicit
  settings), fetched at the first sign-in and kept for an hour, never at start-up or per request: the library
  builds its backend for every request of a signed-in user (``get_user``), so a provider that is down must not
  take the site down with it.
* **The ID token is checked fully**: issuer and audience (the library skips ``aud`` and never looks at
  ``iss``), the ``iss`` of the authorization response (RFC 9207, where the provider sends it), and the userinfo
  ``sub`` must be the ID token's.
* **Accounts are found by (issuer, sub)**, never by e-mail address (the library's default): see
  ``services.sign_in_with_identity``.
* **Clear errors**: a refusal at the provider, an unknown or reused state, a nonce or signature that does not
  verify, a provider that cannot be reached — each is a message on the sign-in page, and nothing is stored.
"""

from __future__ import annotations

import logging
import time

import jwt
import requests
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from django.shortcuts import redirect
from django.views import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts import services
from accounts.services import SignInRefused

logger = logging.getLogger(__name__)

DISCOVERY_SECONDS = 3600
_discovered: dict[str, tuple[float, dict]] = {}


class ProviderUnavailable(Exception):
    """The provider's discovery document could not be read (or names another issuer)."""


def enabled() -> bool:
    return settings.NEUROX_OIDC_ENABLED


def provider_name() -> str:
    return settings.NEUROX_OIDC_NAME


def _discovery() -> dict:
    issuer = settings.NEUROX_OIDC_ISSUER
    cached = _discovered.get(issuer)
    if cached and time.monotonic() - cached[0] < DISCOVERY_SECONDS:
        return cached[1]
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as error:
        raise ProviderUnavailable(f"{url}: {error}") from error
    if document.get("issuer") != issuer:
        raise ProviderUnavailable(f"{url} names the issuer {document.get('issuer')!r}, not {issuer!r}")
    _discovered[issuer] = (time.monotonic(), document)
    return document


def endpoint(name: str) -> str:
    """``authorization_endpoint``, ``token_endpoint``, ``userinfo_endpoint`` or ``jwks_uri``: the explicit
    setting when there is one, else the discovery document's."""
    explicit = settings.NEUROX_OIDC_ENDPOINTS.get(name)
    if explicit:
        return explicit
    value = _discovery().get(name)
    if not value:
        raise ProviderUnavailable(f"the discovery document of {settings.NEUROX_OIDC_ISSUER} has no {name}")
    return value


class UniversitySignInBackend(OIDCAuthenticationBackend):
    """The library's code flow with the checks above; does nothing while university sign-in is off."""

    def __init__(self, *args, **kwargs):
        # Not the library's __init__: it would resolve every endpoint each time Django builds the backend.
        self.UserModel = get_user_model()

    OIDC_RP_IDP_SIGN_KEY = None
    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_RP_CLIENT_ID)
    OIDC_RP_CLIENT_SECRET = property(lambda self: settings.OIDC_RP_CLIENT_SECRET)
    OIDC_RP_SIGN_ALGO = property(lambda self: settings.OIDC_RP_SIGN_ALGO)
    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: endpoint("token_endpoint"))
    OIDC_OP_USER_ENDPOINT = property(lambda self: endpoint("userinfo_endpoint"))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: endpoint("jwks_uri"))

    def authenticate(self, request, **kwargs):
        if not enabled() or request is None:
            return None
        return super().authenticate(request, **kwargs)

    def get_user(self, user_id):
        return ModelBackend.get_user(self, user_id)  # refuses switched-off accounts, as a password sign-in does

    def get_payload_data(self, token, key):
        algorithm = self.OIDC_RP_SIGN_ALGO
        if jwt.get_unverified_header(token).get("alg") != algorithm:
            raise SuspiciousOperation(f"The token is not signed with {algorithm}.")
        try:
            return jwt.decode(token, key, algorithms=[algorithm], audience=self.OIDC_RP_CLIENT_ID,
                              issuer=settings.NEUROX_OIDC_ISSUER, leeway=60,
                              options={"require": ["iss", "aud", "sub"]})
        except jwt.PyJWTError as error:
            raise SuspiciousOperation(f"The token does not verify: {error}") from error

    def verify_token(self, token, **kwargs):
        payload = super().verify_token(token, **kwargs)
        if "nonce" in kwargs and "exp" not in payload:
            raise SuspiciousOperation("The ID token has no expiry (exp).")
        return payload

    def verify_claims(self, claims):
        return True  # what an account needs is checked, with a message, in services.sign_in_with_identity

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if str(userinfo.get("sub")) != str(payload.get("sub")):
            raise SuspiciousOperation("The userinfo answer is about another subject than the ID token.")
        claims = {**payload, **userinfo}
        return services.sign_in_with_identity(issuer=settings.NEUROX_OIDC_ISSUER, claims=claims)


def _back_to_sign_in(request, message: str):
    messages.error(request, message)
    return redirect(settings.LOGIN_URL)


def _provider_error(error: Exception) -> str:
    """The OAuth error of a refused token request (``invalid_grant: …``), when the provider said one."""
    response = getattr(error, "response", None)
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict) or not body.get("error"):
        return ""
    description = str(body.get("error_description") or "").strip()
    return f" ({body['error']}: {description})" if description else f" ({body['error']})"


class SignInStartView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider with a fresh state, nonce and PKCE challenge (kept in the session)."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the endpoint is resolved when it is needed, below

    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_RP_CLIENT_ID)
    OIDC_OP_AUTH_ENDPOINT = property(lambda self: endpoint("authorization_endpoint"))

    def get(self, request):
        if not enabled():
            raise Http404("University sign-in is not set up on this site.")
        try:
            return super().get(request)
        except ProviderUnavailable as error:
            logger.warning("University sign-in: provider unavailable: %s", error)
            return _back_to_sign_in(request, (
                f"The sign-in service of {provider_name()} cannot be reached just now, so university sign-in is "
                "not possible. Try again in a few minutes."
            ))


class SignInCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back: verifies, signs in, or says on the sign-in page why not."""

    def get(self, request):
        if not enabled():
            raise Http404("University sign-in is not set up on this site.")
        name = provider_name()
        start_again = f"Nothing was stored. Start again with “Sign in with {name}”."
        if request.GET.get("error"):
            # As the library does: the state cannot be replayed, and no session stays signed in.
            request.session.get("oidc_states", {}).pop(request.GET.get("state"), None)
            request.session.modified = True
            if request.user.is_authenticated:
                auth.logout(request)
            description = request.GET.get("error_description", "").strip()
            return _back_to_sign_in(request, (
                f"{name} refused the sign-in ({request.GET['error']}"
                + (f": {description}" if description else "") + f"). {start_again}"
            ))
        state = request.GET.get("state")
        if "code" not in request.GET or state not in request.session.get("oidc_states", {}):
            return _back_to_sign_in(request, (
                "This sign-in answer does not belong to a sign-in started in this browser (its state is unknown, "
                f"expired or already used), so it was not accepted. {start_again}"
            ))
        answered_by = request.GET.get("iss")
        if answered_by is not None and answered_by != settings.NEUROX_OIDC_ISSUER:
            return _back_to_sign_in(request, f"This sign-in answer comes from another provider. {start_again}")
        try:
            return super().get(request)
        except SignInRefused as error:
            return _back_to_sign_in(request, f"{error} Nothing was stored.")
        except SuspiciousOperation as error:
            logger.warning("University sign-in: answer not verified: %s", error)
            return _back_to_sign_in(request, (
                f"The answer from {name} could not be verified ({error}), so you were not signed in. {start_again}"
            ))
        except requests.HTTPError as error:
            logger.warning("University sign-in: the provider refused: %s", error)
            return _back_to_sign_in(request, (
                f"{name} refused to complete the sign-in{_provider_error(error)}. {start_again}"
            ))
        except (requests.RequestException, ProviderUnavailable) as error:
            logger.warning("University sign-in: provider unavailable: %s", error)
            return _back_to_sign_in(request, (
                f"The sign-in service of {name} could not be reached to complete the sign-in. {start_again}"
            ))

    def login_failure(self):
        return _back_to_sign_in(self.request, (
            f"Sign-in with {provider_name()} did not complete. Nothing was stored. Start again, or sign in with a "
            "password."
        ))
