"""Who is in a project and with which role."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from .. import selectors
from ..models import Membership, Project, Role


def find_user(identifier: str):
    """A user by username or e-mail (both case-insensitive)."""
    identifier = (identifier or "").strip()
    if not identifier:
        raise ValidationError({"user": "Give a username or an e-mail address."})
    user_model = get_user_model()
    matches = list(user_model.objects.filter(Q(username__iexact=identifier) | Q(email__iexact=identifier))[:2])
    if len(matches) != 1:
        raise ValidationError({"user": f"No single user has the username or e-mail “{identifier}”."})
    return matches[0]


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role “{role}”: choose owner, editor or viewer."})
    return role


def add_member(actor, project: Project, identifier: str, role: str = Role.VIEWER) -> Membership:
    if not selectors.can_manage(actor, project):
        raise PermissionDenied("Only the project's owners can add members.")
    role = _check_role(role)
    user = find_user(identifier)
    if project.memberships.filter(user=user).exists():
        raise ValidationError({"user": f"{user.get_username()} is already a member of this project."})
    try:
        with transaction.atomic():
            return Membership.objects.create(project=project, user=user, role=role)
    except IntegrityError:  # added by someone else in the meantime
        raise ValidationError({"user": f"{user.get_username()} is already a member of this project."}) from None


def change_role(actor, membership: Membership, role: str) -> Membership:
    project = membership.project
    if not selectors.can_manage(actor, project):
        raise PermissionDenied("Only the project's owners can change roles.")
    role = _check_role(role)
    if membership.user_id == project.owner_id and role != Role.OWNER:
        raise ValidationError({"role": "The person who created the project always stays an owner."})
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def remove_member(actor, membership: Membership) -> None:
    """Owners remove anyone but the project's creator; any member may leave a project themselves."""
    project = membership.project
    leaving = membership.user_id == actor.pk
    if not leaving and not selectors.can_manage(actor, project):
        raise PermissionDenied("Only the project's owners can remove members.")
    if membership.user_id == project.owner_id:
        raise ValidationError("The person who created the project cannot be removed from it.")
    membership.delete()
