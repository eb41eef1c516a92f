"""The roles a permission test tries, as keys of the ``people`` fixture, and the status each should get."""

from __future__ import annotations

from projects.models import Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

ROLES = ("owner", "editor", "viewer", "stranger", "anonymous")
MEMBERS = {"owner", "editor", "viewer"}
WRITERS = {"owner", "editor"}


def expected_status(who: str, allowed: set[str], ok: int = 200) -> int:
    """What ``who`` gets from an endpoint that ``allowed`` may use: strangers never see the run (404), a
    member without the role gets 403, anonymous clients 401."""
    if who == "anonymous":
        return 401
    if who == "stranger":
        return 404
    return ok if who in allowed else 403


def page_status(who: str, allowed: set[str], ok: int = 200) -> int:
    """As the API, except that anonymous visitors are sent to sign in (302)."""
    return 302 if who == "anonymous" else expected_status(who, allowed, ok)


def people_of(project_name: str) -> dict:
    """A project named ``project_name`` and one user per relation to it: its ``owner`` (olivia), ``editor``
    (eddie), ``viewer`` (vera), and a ``stranger`` (sam)."""
    owner = UserFactory(username="olivia")
    project = ProjectFactory(owner=owner, name=project_name)
    editor = MembershipFactory(project=project, user=UserFactory(username="eddie"), role=Role.EDITOR).user
    viewer = MembershipFactory(project=project, user=UserFactory(username="vera"), role=Role.VIEWER).user
    stranger = UserFactory(username="sam")
    return {"project": project, "owner": owner, "editor": editor, "viewer": viewer, "stranger": stranger}
