"""``manage.py load_examples``: create the example projects (visible read-only to every signed-in user) and start
their runs; safe to run again (everything already there is reused)."""

from django.core.management.base import BaseCommand, CommandError

from analysis.runs.example_projects import load_examples
from analysis.examples.catalogue import EXAMPLES


class Command(BaseCommand):
    help = "Create the example projects and start their runs on the workers (reusing whatever is already there)."

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", metavar="example",
                            help=f"which examples (default: all): {', '.join(e.slug for e in EXAMPLES)}")
        parser.add_argument("--small", action="store_true",
                            help="the small versions (tiny models, a few dozen sentences): what the tests use")
        parser.add_argument("--no-runs", action="store_true", help="create the projects and uploads only")

    def handle(self, *args, slugs, small, no_runs, **options):
        unknown = sorted(set(slugs) - {e.slug for e in EXAMPLES})
        if unknown:
            raise CommandError(f"No example {', '.join(unknown)}; choose among {', '.join(e.slug for e in EXAMPLES)}.")
        load_examples(slugs or None, small=small, runs=not no_runs, log=lambda line: self.stdout.write(line))
