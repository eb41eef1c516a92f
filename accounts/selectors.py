"""Reads for accounts, always scoped to a user."""

from accounts.models import ApiToken


def tokens_of(user):
    """All tokens of ``user`` (active, expired and revoked), newest first."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def token_of(user, token_id: int) -> ApiToken:
    """One of ``user``'s tokens; another user's token id raises DoesNotExist (a 404, not a 403)."""
    return tokens_of(user).get(pk=token_id)
