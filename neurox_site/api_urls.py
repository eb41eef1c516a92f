"""The /api/v1/ router. Each app contributes an ``api_urls`` module with its own ``urlpatterns``; /api/v1/ itself
answers an index of them."""

from django.urls import NoReverseMatch, URLResolver, include, path, reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class ApiIndexSerializer(serializers.Serializer):
    endpoints = serializers.DictField(
        child=serializers.URLField(), help_text="Each collection endpoint by name, e.g. `projects`."
    )
    schema = serializers.URLField(help_text="The OpenAPI schema.")
    docs = serializers.URLField(help_text="The interactive documentation page.")
    authentication = serializers.CharField(help_text="How to authenticate.")


def _route_names(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _route_names(pattern.url_patterns)
        elif pattern.name:
            yield pattern.name


class ApiRootView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(summary="Index of the API", responses={200: ApiIndexSerializer})
    def get(self, request):
        """Every endpoint that needs no id (the collections), the schema and the docs. Open to anyone."""
        root = reverse("api-root")
        endpoints = {}
        for name in _route_names(urlpatterns):
            try:
                url = reverse(name)
            except NoReverseMatch:  # needs an id: reachable from a collection
                continue
            if url != root:
                endpoints[url.removeprefix(root).rstrip("/")] = request.build_absolute_uri(url)
        return Response({
            "endpoints": dict(sorted(endpoints.items())),
            "schema": request.build_absolute_uri(reverse("api-schema")),
            "docs": request.build_absolute_uri(reverse("api-docs")),
            "authentication": "Send `Authorization: Token <secret>`; create tokens on the API tokens page "
            f"({request.build_absolute_uri(reverse('accounts:tokens'))}) or at the `tokens` endpoint.",
        })


urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("", include("accounts.api_urls")),
    path("", include("projects.api_urls")),
    path("", include("analysis.api_urls")),
]
