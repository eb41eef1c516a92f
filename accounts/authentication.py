"""DRF authentication with personal API tokens: ``Authorization: Token nx_...`` (``Bearer`` is accepted too)."""

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from accounts.services import authenticate_token_secret


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("token", "bearer")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid token header: expected 'Token <secret>'."))
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError as error:
            raise exceptions.AuthenticationFailed(_("Invalid token header: the token is not ASCII.")) from error
        token = authenticate_token_secret(secret)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked token."))
        return token.user, token

    def authenticate_header(self, request):
        # A WWW-Authenticate header makes DRF answer 401 (not 403) to unauthenticated API requests.
        return "Token"
