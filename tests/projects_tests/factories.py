"""factory_boy factories for projects and memberships."""

import factory

from projects.models import Membership, Project, Role
from tests.factories import UserFactory


class ProjectFactory(factory.django.DjangoModelFactory):
    """A project whose owner also has the owner membership, as ``services.create_project`` makes it."""

    class Meta:
        model = Project
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Project {n}")
    description = "A test project."
    owner = factory.SubFactory(UserFactory)

    @factory.post_generation
    def owner_membership(project, create, extracted, **kwargs):
        if create:
            Membership.objects.get_or_create(project=project, user=project.owner, defaults={"role": Role.OWNER})


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.VIEWER
