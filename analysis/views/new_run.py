"""The new-analysis form (placeholder: the workspace issue fills it in)."""

from django.shortcuts import redirect

from projects.selectors import project_for


def new_run(request, pk):
    project = project_for(request.user, pk, write=True)
    return redirect("analysis:run-list", project.pk)
