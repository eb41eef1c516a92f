from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count
from django.utils import timezone

from accounts import services
from accounts.models import LIMITS, ApiToken, ExternalIdentity, QuotaGroup, QuotaGroupRule, User


class ApiTokenInline(admin.TabularInline):
    model = ApiToken
    extra = 0
    can_delete = False
    fields = ["name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = ["name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # a token's secret can only be shown to its owner, on the tokens page


LIMIT_FIELDS = ["quota_group", *LIMITS]


class QuotaGroupRuleInline(admin.TabularInline):
    model = QuotaGroupRule
    extra = 0
    fields = ["priority", "kind", "claim", "value"]


@admin.register(QuotaGroupRule)
class QuotaGroupRuleAdmin(admin.ModelAdmin):
    """Which university sign-ins get which group (applied at every sign-in; the first match by priority)."""

    list_display = ["__str__", "priority", "kind", "claim", "value", "group"]
    list_editable = ["priority"]
    list_filter = ["kind", "group"]
    list_select_related = ["group"]


class ExternalIdentityInline(admin.TabularInline):
    """An operator may link an existing account to a university identity by adding (issuer, sub) here."""

    model = ExternalIdentity
    extra = 0
    fields = ["issuer", "subject", "created_at", "last_sign_in_at", "rule_group"]
    readonly_fields = ["created_at", "last_sign_in_at", "rule_group"]


@admin.register(QuotaGroup)
class QuotaGroupAdmin(admin.ModelAdmin):
    list_display = ["name", *LIMITS, "member_count"]
    search_fields = ["name"]
    inlines = [QuotaGroupRuleInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_total=Count("members"))

    @admin.display(description="members", ordering="member_total")
    def member_count(self, group):
        return group.member_total


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = [
        "username", "email", "first_name", "last_name", "is_active", "is_staff",
        "quota_group", "storage_quota_bytes", "max_concurrent_runs", "last_login", "date_joined",
    ]
    list_filter = ["is_active", "is_staff", "is_superuser", "quota_group", "date_joined"]
    search_fields = ["username", "email", "first_name", "last_name"]
    fieldsets = [
        *DjangoUserAdmin.fieldsets,
        ("Limits (empty = the group's, else the site default)", {"fields": LIMIT_FIELDS}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["username", "email", "password1", "password2"]}),
        ("Limits (empty = the group's, else the site default)", {"fields": LIMIT_FIELDS}),
    ]
    inlines = [ExternalIdentityInline, ApiTokenInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at", "expires_at"]
    search_fields = ["name", "prefix", "user__username", "user__email"]
    list_select_related = ["user"]
    readonly_fields = ["user", "name", "prefix", "digest", "created_at", "last_used_at", "expires_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            services.revoke_token(token)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} token(s) at {timezone.now():%Y-%m-%d %H:%M}.")
