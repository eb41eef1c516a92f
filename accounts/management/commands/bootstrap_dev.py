"""Create (or reset) a development login and print it: the README's first command uses this."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a staff/superuser login for local development and print its username and password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="dev")
        parser.add_argument("--email", default="dev@localhost")
        parser.add_argument("--password", help="Default: a new random password each time.")
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Allow running with DEBUG off (it creates a superuser with a printed password).",
        )

    def handle(self, *args, username, email, password, allow_production, **options):
        if not settings.DEBUG and not allow_production:
            raise CommandError(
                "bootstrap_dev creates a superuser with a printed password; it only runs with DEBUG on "
                "(pass --allow-production if you really mean it)."
            )
        password = password or secrets.token_urlsafe(9)
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        created = user is None
        if created:
            user = User(username=username, email=email)
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password(password)
        user.save()
        verb = "Created" if created else "Reset the password of"
        self.stdout.write(self.style.SUCCESS(f"{verb} the development login:"))
        self.stdout.write(f"  username: {username}\n  password: {password}")
