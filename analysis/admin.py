"""Admin for runs, their steps and log lines, the shared results (with the bytes each one takes), and saved
manipulation recipes."""

from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat

from projects.selectors import projects_visible_to

from analysis.models import LogLine, ManipulationRecipe, Result, Run, Step
from analysis.runs.services import reclaim_unreferenced_results


class StepInline(admin.TabularInline):
    model = Step
    fields = ("title", "kind", "queue", "state", "reused", "done", "total", "unit", "attempts", "worker", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "created_by", "state", "created_at", "started_at", "finished_at")
    list_filter = ("state",)
    search_fields = ("project__name", "created_by__username")
    readonly_fields = ("project", "created_by", "request", "state", "error", "created_at", "started_at",
                       "finished_at", "heartbeat_at", "log_seq")
    inlines = [StepInline]


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ("id", "run", "title", "queue", "state", "reused", "attempts", "worker", "heartbeat_at")
    list_filter = ("state", "kind", "queue")
    readonly_fields = [field.name for field in Step._meta.fields] + ["needs"]


@admin.register(LogLine)
class LogLineAdmin(admin.ModelAdmin):
    list_display = ("run", "seq", "step", "created_at", "text")
    list_filter = ("created_at",)
    readonly_fields = ("run", "step", "seq", "text", "created_at")


@admin.register(Result)
class ResultAdmin(admin.ModelAdmin):
    list_display = ("key_short", "kind", "state", "size", "created_at")
    list_filter = ("kind", "state")
    search_fields = ("key",)
    readonly_fields = ("kind", "key", "state", "builder", "path", "bytes", "meta", "created_at")
    actions = ["reclaim"]

    @admin.action(description="Reclaim the selected results that no run refers to")
    def reclaim(self, request, queryset):
        count, size = reclaim_unreferenced_results(queryset)
        self.message_user(request, f"Reclaimed {count} result(s), {filesizeformat(size)}; results a run refers "
                                   "to were kept.", messages.SUCCESS)

    @admin.display(description="key")
    def key_short(self, result):
        return result.key[:16]

    @admin.display(description="bytes", ordering="bytes")
    def size(self, result):
        return f"{filesizeformat(result.bytes)} ({result.bytes:,})"


@admin.register(ManipulationRecipe)
class ManipulationRecipeAdmin(admin.ModelAdmin):
    """Recipes are made on the Manipulation view (their JSON is checked there); here they are read or deleted.
    Staff who are not superusers see only the recipes of their own projects."""

    list_display = ("name", "project", "run", "created_by", "created_at")
    search_fields = ("name", "project__name", "created_by__username")
    readonly_fields = ("project", "run", "created_by", "name", "recipe", "created_at")

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("project", "run", "created_by")
        if request.user.is_superuser:
            return queryset
        return queryset.filter(project__in=projects_visible_to(request.user))

    def has_add_permission(self, request):
        return False


# ------------------------------------------------------------------------------------------------ the operator's page
#
# One page for the people who run the site (admin → Operations, linked from the admin index): queue depth, what
# each worker does, who runs and waits, who uses how much compute and storage this period; and the actions
# (cancel a run, change limits through the User / Quota group admin, reclaim unreferenced results). Reading it
# needs the "view run" permission (superusers have every one), cancelling "change run", reclaiming "delete
# result"; a signed-out or non-staff visitor is sent to the admin's sign-in (admin_view).

OPERATOR_USERS = 100  # rows of the per-user table (the heaviest users of compute this period first)


def _ping_workers() -> dict[str, bool]:
    """Worker name → True for each worker that answers Celery's ping within NEUROX_ADMIN_PING_TIMEOUT; {} when
    the broker cannot be asked (the page still shows what the Step rows say)."""
    from django.conf import settings
    from celery import current_app as app

    try:
        answers = app.control.inspect(timeout=settings.NEUROX_ADMIN_PING_TIMEOUT).ping() or {}
    except Exception:  # noqa: BLE001 — the broker is down: the Step rows still tell most of it
        return {}
    return {name: True for name in answers}


def _queues():
    from django.db.models import Count, Q

    from analysis.steps import step_types
    from analysis.steps.queues import messages_waiting

    names = sorted({kind.queue for kind in step_types()} | {"realtime"})
    counts = {row["queue"]: row for row in Step.objects.filter(queue__in=names).values("queue").annotate(
        queued=Count("id", filter=Q(state="queued")), running=Count("id", filter=Q(state="running")),
        pending=Count("id", filter=Q(state="pending")))}
    return [{"name": name, "queued": counts.get(name, {}).get("queued", 0),
             "running": counts.get(name, {}).get("running", 0), "pending": counts.get(name, {}).get("pending", 0),
             "messages": messages_waiting(name)} for name in names]


def _workers():
    """Each worker that holds a running step (its host, device, step, last heartbeat), then each worker that
    answered the ping and holds none (idle)."""
    running = Step.objects.filter(state="running").select_related("run", "run__created_by").order_by("worker", "id")
    rows, busy = [], set()
    for step in running:
        busy.add(step.worker)
        rows.append({"name": step.worker or "?", "host": step.worker.partition("@")[2] or step.worker,
                     "device": step.device or "?", "step": step, "heartbeat_at": step.heartbeat_at})
    for name in sorted(set(_ping_workers()) - busy):
        rows.append({"name": name, "host": name.partition("@")[2] or name, "device": "", "step": None,
                     "heartbeat_at": None})
    return rows


def _runs_per_user():
    from django.db.models import Count, Q

    from analysis.models import FINISHED_RUN_STATES

    return list(Run.objects.exclude(state__in=FINISHED_RUN_STATES).values("created_by", "created_by__username")
                .annotate(running=Count("id", filter=Q(state="running")),
                          waiting=Count("id", filter=Q(state="queued"))).order_by("created_by__username"))


def _usage_per_user(now=None):
    """The users with the most compute-seconds this period (then the others, by name), each with their compute
    against their quota and their storage (the registered counters: uploads, results) against theirs."""
    from django.contrib.auth import get_user_model
    from django.db.models import FloatField, OuterRef, Subquery, Sum, Value
    from django.db.models.functions import Coalesce

    from accounts.quotas import storage_use
    from analysis.runs.selectors import compute_period_start, compute_seconds_used

    start = compute_period_start(now)
    seconds = Step.objects.filter(run__created_by=OuterRef("pk"), run__finished_at__gte=start).order_by().values(
        "run__created_by").annotate(total=Sum("compute_seconds")).values("total")[:1]
    users = get_user_model().objects.select_related("quota_group").annotate(
        compute=Coalesce(Subquery(seconds, output_field=FloatField()), Value(0.0))).order_by("-compute", "username")
    rows = []
    for user in users[:OPERATOR_USERS]:
        use = storage_use(user)
        rows.append({"user": user, "compute": compute_seconds_used(user, now),
                     "compute_quota": user.limit("compute_quota_seconds"),
                     "uploads": use.get("uploads", 0), "results": use.get("results", 0),
                     "storage": sum(use.values()), "storage_quota": user.limit("storage_quota_bytes")})
    return rows


def _require(request, permission: str) -> None:
    from django.core.exceptions import PermissionDenied

    if not request.user.has_perm(permission):
        raise PermissionDenied("Your admin account may not do this; ask a superuser for the permission.")


def operations_view(request):
    from django.conf import settings
    from django.db.models import Sum
    from django.template.response import TemplateResponse

    from accounts.models import QuotaGroup
    from analysis.models import FINISHED_RUN_STATES, ResultState

    _require(request, "analysis.view_run")
    active = (Run.objects.exclude(state__in=FINISHED_RUN_STATES).select_related("project", "created_by")
              .order_by("created_at", "id"))
    unreferenced = Result.objects.filter(state=ResultState.READY).exclude(
        key__in=Step.objects.values("result_key"))
    context = {
        **admin.site.each_context(request),
        "title": "Operations",
        "queues": _queues(),
        "workers": _workers(),
        "runs_per_user": _runs_per_user(),
        "active_runs": active,
        "usage": _usage_per_user(),
        "groups": QuotaGroup.objects.all(),
        "period_days": settings.NEUROX_COMPUTE_PERIOD_DAYS,
        "log_retention_days": settings.NEUROX_LOG_RETENTION_DAYS,
        "unreferenced": {"count": unreferenced.count(),
                         "bytes": unreferenced.aggregate(total=Sum("bytes"))["total"] or 0},
        "can_cancel": request.user.has_perm("analysis.change_run"),
        "can_reclaim": request.user.has_perm("analysis.delete_result"),
    }
    return TemplateResponse(request, "admin/analysis/operations.html", context)


def operations_cancel(request, run_id: int):
    from django.shortcuts import get_object_or_404, redirect
    from django.views.decorators.http import require_POST

    from analysis.runs.services import RunStateError, cancel_run_as_operator

    @require_POST
    def cancel(request):
        _require(request, "analysis.change_run")
        run = get_object_or_404(Run, pk=run_id)
        try:
            cancel_run_as_operator(request.user, run)
            messages.success(request, f"Run {run.pk} of {run.created_by} cancelled.")
        except RunStateError as error:
            messages.warning(request, error.message)
        return redirect("admin-operations")

    return cancel(request)


def operations_reclaim(request):
    from django.shortcuts import redirect
    from django.views.decorators.http import require_POST

    @require_POST
    def reclaim(request):
        _require(request, "analysis.delete_result")
        count, size = reclaim_unreferenced_results()
        messages.success(request, f"Reclaimed {count} result(s), {filesizeformat(size)}; results a run refers to "
                                  "were kept.")
        return redirect("admin-operations")

    return reclaim(request)


def operator_urls():
    """The operator's page and its actions, under /admin/operations/, behind the admin's own staff check."""
    from django.urls import path

    return [
        path("admin/operations/", admin.site.admin_view(operations_view), name="admin-operations"),
        path("admin/operations/runs/<int:run_id>/cancel/", admin.site.admin_view(operations_cancel),
             name="admin-operations-cancel"),
        path("admin/operations/reclaim/", admin.site.admin_view(operations_reclaim),
             name="admin-operations-reclaim"),
    ]
