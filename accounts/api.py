"""REST endpoints for the signed-in user's own API tokens."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from accounts import selectors, services
from accounts.serializers import ApiTokenSerializer, NewApiTokenSerializer


class ApiTokenViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Your personal API tokens. Creating one returns its secret once; deleting one revokes it."""

    serializer_class = ApiTokenSerializer
    filterset_fields = ["revoked_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return selectors.ApiToken.objects.none()
        return selectors.tokens_of(self.request.user)

    @extend_schema(request=ApiTokenSerializer, responses={201: NewApiTokenSerializer})
    def create(self, request):
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, secret = services.create_token(
            request.user, serializer.validated_data["name"], serializer.validated_data.get("expires_at")
        )
        token.secret = secret
        response = Response(NewApiTokenSerializer(token).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(responses={204: None}, description="Revoke the token: it never authenticates again.")
    def destroy(self, request, pk=None):
        services.revoke_token(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
