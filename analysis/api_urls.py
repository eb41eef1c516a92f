"""REST endpoints for runs (mounted under /api/v1/ by neurox_site/api_urls.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter(use_regex_path=False)
router.register("runs", api.RunViewSet, basename="run")

urlpatterns = [
    *router.urls,
    path("projects/<int:project_pk>/runs/", api.ProjectRunViewSet.as_view({"get": "list", "post": "create"}),
         name="project-run-list"),
    path("runs/<int:run_pk>/results/<int:step_pk>/files/<path:name>",
         api.RunResultFileViewSet.as_view({"get": "retrieve"}), name="api-run-result-file"),
]

urlpatterns += [
    path("projects/<int:project_pk>/realtime/activations/", api.RealtimeActivationsView.as_view({"post": "post"}),
         name="project-realtime-activations"),
    path("projects/<int:project_pk>/realtime/manipulate/", api.RealtimeManipulateView.as_view({"post": "post"}),
         name="project-realtime-manipulate"),
]

urlpatterns += [
    path("projects/<int:project_pk>/manipulation-recipes/",
         api.ManipulationRecipeViewSet.as_view({"get": "list", "post": "create"}), name="project-recipe-list"),
    path("projects/<int:project_pk>/manipulation-recipes/<int:pk>/",
         api.ManipulationRecipeViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
         name="project-recipe-detail"),
    path("runs/<int:run_pk>/downloads/<int:step_pk>/<str:name>", api.RunDownloadViewSet.as_view({"get": "retrieve"}),
         name="api-run-download"),
]
