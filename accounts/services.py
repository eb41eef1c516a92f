"""Writes for accounts: sign-up, API tokens, university sign-in. The only place that changes account state."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, ExternalIdentity, QuotaGroupRule

logger = logging.getLogger(__name__)

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


# --- University sign-in (OpenID Connect) -------------------------------------------------------------------------


class SignInRefused(Exception):
    """A university sign-in that is refused for a reason the person should read (the message says what to do)."""


USERNAME_CHARACTERS = re.compile(r"[^\w.@+-]")


def _claim_text(claims: dict, name: str, limit: int) -> str:
    value = claims.get(name)
    return str(value).strip()[:limit] if isinstance(value, (str, int)) else ""


def _free_username(claims: dict, email: str) -> str:
    """preferred_username, else the e-mail's local part, cut to Django's rules; -2, -3… when taken. Only a
    name: accounts are never found by it."""
    User = get_user_model()
    wanted = _claim_text(claims, "preferred_username", 150) or email.split("@", 1)[0]
    base = USERNAME_CHARACTERS.sub("", wanted)[:140] or "user"
    candidate, number = base, 1
    while User.objects.filter(username__iexact=candidate).exists():
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def matching_rule_group(claims: dict):
    """The quota group of the first operator rule (QuotaGroupRule, by priority) the claims match, or None."""
    for rule in QuotaGroupRule.objects.select_related("group"):
        if rule.matches(claims):
            return rule.group
    return None


def _apply_group_rules(user, identity: ExternalIdentity, claims: dict) -> None:
    """The rules decide the group of a person whose group is empty or came from the rules; a group an operator
    set by hand (a different one) stays until it is emptied again."""
    if user.quota_group_id is not None and user.quota_group_id != identity.rule_group_id:
        return
    group = matching_rule_group(claims)
    user.quota_group = group
    identity.rule_group = group


@transaction.atomic
def sign_in_with_identity(*, issuer: str, claims: dict):
    """The user for a verified university sign-in (claims from the ID token and userinfo): found by
    (issuer, sub), created at the first sign-in. Names, e-mail and the rule-given quota group are brought up to
    date each time. Raises SignInRefused with a message for the person."""
    User = get_user_model()
    subject = str(claims.get("sub") or "").strip()
    if not subject:
        raise SignInRefused("The sign-in service sent no subject (sub) claim, so the account cannot be identified.")
    email = _claim_text(claims, "email", 254)
    identity = (ExternalIdentity.objects.select_for_update().select_related("user")
                .filter(issuer=issuer, subject=subject).first())
    if identity is None:
        if not email:
            raise SignInRefused(
                "The sign-in service did not release your e-mail address, which an account here needs. Ask its "
                "administrators to release the email claim (scope “email”) to this site."
            )
        if not settings.NEUROX_OIDC_CREATE_ACCOUNTS:
            raise SignInRefused(
                "No account here is linked to your university sign-in, and this site does not create accounts "
                "at the first sign-in. Ask an administrator for an account."
            )
        if User.objects.filter(email__iexact=email).exists():
            # Never linked by address alone: whoever controls that address at the provider would take it over.
            raise SignInRefused(
                f"An account with the e-mail address {email} already exists here and is not linked to your "
                "university sign-in. Sign in with its password instead, or ask an administrator to link the two."
            )
        user = User(username=_free_username(claims, email), email=email)
        user.set_unusable_password()  # signs in through the university only, until a password is set
        user.save()
        identity = ExternalIdentity(user=user, issuer=issuer, subject=subject)
    user = identity.user
    if not user.is_active:
        raise SignInRefused("Your account here is switched off. Ask an administrator if this is a mistake.")
    user.first_name = _claim_text(claims, "given_name", 150) or user.first_name
    user.last_name = _claim_text(claims, "family_name", 150) or user.last_name
    if email and email.lower() != user.email.lower():
        if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            logger.warning("University sign-in of %s: keeps %s, the new address %s belongs to another account",
                           user.username, user.email, email)
        else:
            user.email = email
    _apply_group_rules(user, identity, claims)
    user.save()
    identity.last_sign_in_at = timezone.now()
    identity.save()
    return user
