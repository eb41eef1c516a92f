"""HTML pages for projects, members and the upload library (mounted at /projects/)."""

from django.urls import path

from . import views

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("<int:pk>/", views.project_detail, name="detail"),
    path("<int:pk>/edit/", views.project_edit, name="edit"),
    path("<int:pk>/delete/", views.project_delete, name="delete"),
    path("<int:pk>/members/", views.members, name="members"),
    path("<int:pk>/members/<int:membership_id>/role/", views.member_role, name="member-role"),
    path("<int:pk>/members/<int:membership_id>/remove/", views.member_remove, name="member-remove"),
    path("<int:pk>/uploads/attach/", views.attach, name="attach"),
    path("<int:pk>/uploads/<str:kind>/<int:upload_id>/detach/", views.detach, name="detach"),
    path("<int:pk>/uploads/<str:kind>/new/", views.upload_new, name="project-upload"),
    path("library/", views.library, name="library"),
    path("library/<str:kind>/new/", views.upload_new, name="upload"),
    path("library/<str:kind>/<int:upload_id>/", views.upload_detail, name="upload-detail"),
    path("library/<str:kind>/<int:upload_id>/edit/", views.upload_edit, name="upload-edit"),
    path("library/<str:kind>/<int:upload_id>/delete/", views.upload_delete, name="upload-delete"),
]
