"""Users (custom from the first migration) and their personal API tokens."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class User(AbstractUser):
    """A person using NeuroX. Quota fields left empty mean "the site default" (settings)."""

    email = models.EmailField("e-mail address", unique=True)
    storage_quota_bytes = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Upload storage allowed, in bytes. Empty: the site default (NEUROX_DEFAULT_STORAGE_QUOTA_BYTES).",
    )
    max_concurrent_runs = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Runs this user may have queued or running at once. Empty: the site default "
        "(NEUROX_DEFAULT_MAX_CONCURRENT_RUNS).",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def effective_storage_quota(self) -> int:
        if self.storage_quota_bytes is not None:
            return self.storage_quota_bytes
        return settings.NEUROX_DEFAULT_STORAGE_QUOTA_BYTES

    @property
    def effective_run_limit(self) -> int:
        if self.max_concurrent_runs is not None:
            return self.max_concurrent_runs
        return settings.NEUROX_DEFAULT_MAX_CONCURRENT_RUNS


class ApiTokenQuerySet(models.QuerySet):
    def active(self, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A personal API token: only the SHA-256 of the secret is stored; the secret is shown once at creation.

    Why our own model rather than django-rest-knox: knox 5 tokens have no name and no last-used time, both of
    which the tokens page must show, and knox deletes expired tokens on authentication, so a user could not see
    that a token had expired. Knox's custom ``TOKEN_MODEL`` would still route through its own login view and
    auth class. The part knox gets right — store only a digest, compare by digest lookup, a visible prefix to
    tell tokens apart — is small and kept here. Secrets are 256 random bits, so a plain SHA-256 (not a slow
    password hash) is the right digest: there is nothing to brute-force.
    """

    PREFIX_LENGTH = 8

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True, help_text="First characters of the secret.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the secret, hex.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_active(self) -> bool:
        return not self.is_revoked and not self.is_expired

    @property
    def status(self) -> str:
        if self.is_revoked:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "active"
