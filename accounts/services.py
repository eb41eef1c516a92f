"""Writes for accounts: sign-up, API tokens. The only place that changes account state."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken

TOKEN_SECRET_PREFIX = "nx_"


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(
    user, name: str, expires_at: datetime | None = None, *, acting_token: ApiToken | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns (token row, secret). The secret is not stored and cannot be shown again.

    ``acting_token`` is the token that authenticated the request (None for a signed-in session): a token may only
    create tokens that expire no later than itself, so a short-lived credential cannot mint a lasting one.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, e.g. the machine or script that will use it."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    if acting_token is not None and acting_token.expires_at is not None:
        if expires_at is None or expires_at > acting_token.expires_at:
            raise ValidationError({"expires_at": (
                f"A token can only create tokens that expire no later than itself; this one expires at "
                f"{acting_token.expires_at.isoformat()}. Set expires_at to that or earlier, or create longer-lived "
                "tokens on the API tokens page while signed in."
            )})
    secret = TOKEN_SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        prefix=secret[len(TOKEN_SECRET_PREFIX) : len(TOKEN_SECRET_PREFIX) + ApiToken.PREFIX_LENGTH],
        digest=token_digest(secret),
        expires_at=expires_at,
    )
    return token, secret


def revoke_token(token: ApiToken, *, acting_token: ApiToken | None = None) -> ApiToken:
    """Revoke a token (kept for the record, never authenticates again). Revoking twice is harmless.

    ``acting_token`` is the token that authenticated the request (None for a signed-in session or an admin): a
    token may revoke itself only, so a stolen or short-lived token cannot lock its owner's other tools out.
    """
    if acting_token is not None and acting_token.pk != token.pk:
        raise PermissionDenied(
            "A token can only revoke itself. Revoke other tokens on the API tokens page while signed in."
        )
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def authenticate_token_secret(secret: str) -> ApiToken | None:
    """The active token with this secret (its user loaded), or None. Touches last_used_at at most once a minute."""
    if not secret or not secret.startswith(TOKEN_SECRET_PREFIX):
        return None
    now = timezone.now()
    token = ApiToken.objects.active(now).select_related("user").filter(digest=token_digest(secret)).first()
    if token is None or not token.user.is_active:
        return None
    resolution = settings.NEUROX_TOKEN_LAST_USED_RESOLUTION
    if token.last_used_at is None or now - token.last_used_at >= resolution:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


@transaction.atomic
def sign_up(*, username: str, email: str, password: str):
    """Create an ordinary (non-staff) account. Callers validate the password first (the form does)."""
    return get_user_model().objects.create_user(username=username, email=email, password=password)
