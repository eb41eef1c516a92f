from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "projects"

    def ready(self):
        from accounts.quotas import register_storage_counter
        from projects.selectors import storage_used_by

        register_storage_counter("uploads", storage_used_by)  # the results are analysis's (it registers them)
