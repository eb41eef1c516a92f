"""Test clients signed in as one of the ``people`` fixture's roles; ``who="anonymous"`` stays signed out."""

from __future__ import annotations

from django.test import Client
from rest_framework.test import APIClient


def client_for(people, who: str) -> Client:
    """A Django test client (for HTML pages) with a session of ``people[who]``."""
    client = Client()
    if who != "anonymous":
        client.force_login(people[who])
    return client


def api_client_for(people, who: str) -> APIClient:
    """A DRF client authenticated as ``people[who]`` (for the API)."""
    client = APIClient()
    if who != "anonymous":
        client.force_authenticate(user=people[who])
    return client
