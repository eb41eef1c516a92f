from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "analysis"

    def ready(self):
        from analysis import tasks  # noqa: F401
        from accounts.quotas import register_storage_counter
        from analysis.runs.selectors import results_bytes_of

        register_storage_counter("results", results_bytes_of)  # the uploads are projects' (it registers them)
