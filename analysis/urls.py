"""HTML pages for runs, under /projects/<id>/runs/."""

from django.urls import path

from . import views

app_name = "analysis"

urlpatterns = [
    path("<int:pk>/runs/", views.run_list, name="run-list"),
    path("<int:pk>/runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("<int:pk>/runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("<int:pk>/runs/<int:run_id>/retry/", views.run_retry, name="run-retry"),
]
