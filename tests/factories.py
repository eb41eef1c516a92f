"""factory_boy factories shared by all test folders: users, projects and memberships."""

import factory
from django.contrib.auth import get_user_model

from projects.models import Membership, Project, Role

DEFAULT_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")
    first_name = factory.Faker("first_name")

    @factory.post_generation
    def password(user, create, extracted, **kwargs):
        user.set_password(extracted or DEFAULT_PASSWORD)
        if create:
            user.save(update_fields=["password"])


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
