"""REST endpoints for the signed-in user's own API tokens."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from accounts import selectors, services
from accounts.models import ApiToken
from accounts.serializers import ApiTokenSerializer, NewApiTokenSerializer


def acting_token(request) -> ApiToken | None:
    """The API token that authenticated ``request``, or None (a session, or a test's forced authentication)."""
    return request.auth if isinstance(request.auth, ApiToken) else None


class ApiTokenViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Your personal API tokens. Creating one returns its secret once; deleting one revokes it.

    A request authenticated with a token may create only tokens that expire no later than that token, and may
    revoke only that token itself; a signed-in session may do both without limits (see ``services``).
    """

    serializer_class = ApiTokenSerializer
    filterset_fields = ["revoked_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return selectors.ApiToken.objects.none()
        return selectors.tokens_of(self.request.user)

    @extend_schema(
        request=ApiTokenSerializer, responses={201: NewApiTokenSerializer},
        description="With token authentication, `expires_at` must be set and be no later than the calling token's "
        "own expiry (unless the calling token never expires).",
    )
    def create(self, request):
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, secret = services.create_token(
            request.user, serializer.validated_data["name"], serializer.validated_data.get("expires_at"),
            acting_token=acting_token(request),
        )
        token.secret = secret
        response = Response(NewApiTokenSerializer(token).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(
        responses={204: None},
        description="Revoke the token: it never authenticates again. With token authentication, only the calling "
        "token itself may be revoked (403 otherwise); a signed-in session may revoke any of your tokens.",
    )
    def destroy(self, request, pk=None):
        services.revoke_token(self.get_object(), acting_token=acting_token(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
