"""``manage.py reclaim_results``: delete the results no run refers to any more, and their files."""

from django.core.management.base import BaseCommand
from django.template.defaultfilters import filesizeformat

from analysis.runs.services import reclaim_unreferenced_results


class Command(BaseCommand):
    help = "Delete results (activation stores, rankings, statistics, curves) that no run refers to."

    def handle(self, *args, **options):
        count, size = reclaim_unreferenced_results()
        self.stdout.write(f"Reclaimed {count} result(s), {filesizeformat(size)}.")
