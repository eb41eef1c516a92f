"""Users (custom from the first migration) and their personal API tokens."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class QuotaGroup(models.Model):
    """A group of people who share limits (a faculty, the students, a lab): set by an operator in the admin,
    or given at first institutional sign-in by a claim or e-mail domain rule. Empty fields: the site default."""

    name = models.CharField(max_length=100, unique=True)
    storage_quota_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="Storage (uploads and results) allowed per member, in bytes."
    )
    max_concurrent_runs = models.PositiveIntegerField(
        null=True, blank=True, help_text="Runs a member may have queued or running at once."
    )
    max_run_compute_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="The largest estimated cost, in compute-seconds, of one run."
    )
    compute_quota_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Compute-seconds a member may use per period (NEUROX_COMPUTE_PERIOD_DAYS).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# Each limit: (field on User and QuotaGroup, the setting that holds the site default).
LIMITS = {
    "storage_quota_bytes": "NEUROX_DEFAULT_STORAGE_QUOTA_BYTES",
    "max_concurrent_runs": "NEUROX_DEFAULT_MAX_CONCURRENT_RUNS",
    "max_run_compute_seconds": "NEUROX_DEFAULT_MAX_RUN_COMPUTE_SECONDS",
    "compute_quota_seconds": "NEUROX_DEFAULT_COMPUTE_QUOTA_SECONDS",
}


class User(AbstractUser):
    """A person using NeuroX. Each limit is the user's own value if set, else their quota group's, else the
    site default (settings)."""

    email = models.EmailField("e-mail address", unique=True)
    quota_group = models.ForeignKey(
        QuotaGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="members",
        help_text="Where this user's limits come from when their own are empty.",
    )
    storage_quota_bytes = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Storage (uploads and results) allowed, in bytes. Empty: the group's, else the site default "
        "(NEUROX_DEFAULT_STORAGE_QUOTA_BYTES).",
    )
    max_concurrent_runs = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Runs this user may have queued or running at once. Empty: the group's, else the site default "
        "(NEUROX_DEFAULT_MAX_CONCURRENT_RUNS).",
    )
    max_run_compute_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The largest estimated cost of one run, in compute-seconds. Empty: the group's, else the site "
        "default (NEUROX_DEFAULT_MAX_RUN_COMPUTE_SECONDS).",
    )
    compute_quota_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Compute-seconds allowed per period. Empty: the group's, else the site default "
        "(NEUROX_DEFAULT_COMPUTE_QUOTA_SECONDS).",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    def limit(self, name: str) -> int:
        """The limit ``name`` (a key of LIMITS) that applies to this user: own value, else group's, else site's."""
        own = getattr(self, name)
        if own is not None:
            return own
        if self.quota_group is not None and getattr(self.quota_group, name) is not None:
            return getattr(self.quota_group, name)
        return getattr(settings, LIMITS[name])

    @property
    def effective_storage_quota(self) -> int:
        return self.limit("storage_quota_bytes")

    @property
    def effective_run_limit(self) -> int:
        return self.limit("max_concurrent_runs")


class QuotaGroupRule(models.Model):
    """An operator's rule, applied at every university (OpenID Connect) sign-in: a person whose claims match
    gets ``group``. Rules are tried by ``priority`` (lowest first, then id); the first match wins."""

    class Kind(models.TextChoices):
        EMAIL_DOMAIN = "email_domain", "e-mail domain"
        CLAIM = "claim", "claim value"

    group = models.ForeignKey(QuotaGroup, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.EMAIL_DOMAIN)
    claim = models.CharField(
        max_length=100, blank=True,
        help_text="For a claim rule: the claim's name, e.g. eduperson_affiliation or groups (a list claim matches "
        "when any of its values does).",
    )
    value = models.CharField(
        max_length=255,
        help_text="The claim's value (exact), or the e-mail domain: example.edu matches ada@example.edu and "
        "ada@cs.example.edu, not ada@badexample.edu. Case is ignored.",
    )
    priority = models.PositiveIntegerField(default=100, help_text="Lower is tried first.")

    class Meta:
        ordering = ["priority", "id"]
        verbose_name = "quota group rule"

    def __str__(self) -> str:
        if self.kind == self.Kind.EMAIL_DOMAIN:
            return f"e-mail @{self.value} → {self.group}"
        return f"{self.claim} = {self.value} → {self.group}"

    def clean(self):
        from django.core.exceptions import ValidationError

        self.value = self.value.strip()
        self.claim = self.claim.strip()
        if self.kind == self.Kind.CLAIM and not self.claim:
            raise ValidationError({"claim": "A claim rule needs the claim's name."})
        if self.kind == self.Kind.EMAIL_DOMAIN:
            self.value = self.value.lstrip("@").lower()
            self.claim = ""

    def matches(self, claims: dict) -> bool:
        wanted = self.value.strip().lower()
        if self.kind == self.Kind.EMAIL_DOMAIN:
            email = str(claims.get("email") or "")
            if "@" not in email or claims.get("email_verified") is False:
                return False  # the provider says it has not checked this address: it proves no membership
            domain = email.rsplit("@", 1)[1].lower()
            wanted = wanted.lstrip("@")
            return domain == wanted or domain.endswith("." + wanted)
        found = claims.get(self.claim)
        values = found if isinstance(found, (list, tuple)) else [found]
        return any(value is not None and str(value).strip().lower() == wanted for value in values)


class ExternalIdentity(models.Model):
    """A person's account at an OpenID provider (issuer + ``sub``), linked to one user here. Later sign-ins
    find the user through this, never by e-mail address (an address can be reassigned or unverified)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255, help_text="The provider's sub claim: stable, never reassigned.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)
    rule_group = models.ForeignKey(
        QuotaGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The group the rules gave at the last sign-in (a group set by hand is left alone).",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="unique_external_identity")]
        verbose_name = "university sign-in identity"
        verbose_name_plural = "university sign-in identities"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


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
