"""REST endpoints for runs and their results (mounted under /api/v1/ by neurox_site/api_urls.py): the pipeline's
(``analysis.runs.api``) and the read side's (``analysis.workspace.api``)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from analysis.runs import api as runs_api
from analysis.workspace import api as workspace_api

router = SimpleRouter(use_regex_path=False)
router.register("runs", workspace_api.RunViewSet, basename="run")

urlpatterns = [
    *router.urls,
    path("projects/<int:project_pk>/runs/", runs_api.ProjectRunViewSet.as_view({"get": "list", "post": "create"}),
         name="project-run-list"),
    path("runs/<int:run_pk>/results/<int:step_pk>/files/<path:name>",
         workspace_api.RunResultFileViewSet.as_view({"get": "retrieve"}), name="api-run-result-file"),
]

urlpatterns += [
    path("projects/<int:project_pk>/realtime/activations/", runs_api.RealtimeActivationsView.as_view({"post": "post"}),
         name="project-realtime-activations"),
    path("projects/<int:project_pk>/realtime/manipulate/", runs_api.RealtimeManipulateView.as_view({"post": "post"}),
         name="project-realtime-manipulate"),
]

urlpatterns += [
    path("projects/<int:project_pk>/manipulation-recipes/",
         workspace_api.ManipulationRecipeViewSet.as_view({"get": "list", "post": "create"}),
         name="project-recipe-list"),
    path("projects/<int:project_pk>/manipulation-recipes/<int:pk>/",
         workspace_api.ManipulationRecipeViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
         name="project-recipe-detail"),
    path("runs/<int:run_pk>/downloads/<int:step_pk>/<str:name>",
         workspace_api.RunDownloadViewSet.as_view({"get": "retrieve"}), name="api-run-download"),
]
