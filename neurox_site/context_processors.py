"""Template context shared by every page."""

from django.conf import settings


def sidebar_projects(request):
    """The signed-in user's projects for the sidebar, through the one permission path (projects.selectors)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"sidebar_projects": []}
    from projects.selectors import projects_visible_to

    return {"sidebar_projects": projects_visible_to(user).order_by("name")[:50]}


def site_flags(request):
    return {"signup_enabled": settings.NEUROX_ALLOW_SIGNUP}
