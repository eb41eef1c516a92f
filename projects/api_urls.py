"""REST endpoints for projects, memberships and uploads (mounted under /api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter(use_regex_path=False)
router.register("projects", api.ProjectViewSet, basename="project")
router.register("projects/<int:project_pk>/memberships", api.MembershipViewSet, basename="project-membership")
router.register("uploads/models", api.ModelUploadViewSet, basename="model-upload")
router.register("uploads/corpora", api.CorpusUploadViewSet, basename="corpus-upload")
router.register("uploads/test-sets", api.TestSetUploadViewSet, basename="test-set-upload")

urlpatterns = [
    *router.urls,
    path("projects/<int:project_pk>/uploads/",
         api.ProjectUploadViewSet.as_view({"get": "list", "post": "create"}), name="project-upload-list"),
    path("projects/<int:project_pk>/uploads/<str:kind>/<int:upload_id>/",
         api.ProjectUploadViewSet.as_view({"delete": "destroy"}), name="project-upload-detail"),
]
