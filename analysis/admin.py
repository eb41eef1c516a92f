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
