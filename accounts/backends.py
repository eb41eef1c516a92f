"""Authentication backends."""

from axes.backends import AxesStandaloneBackend


class SignInLimitBackend(AxesStandaloneBackend):
    """django-axes' lockout check for sign-in attempts that come from a client (they carry a request).

    A call without a request (``authenticate(username=..., password=...)`` in a shell or a management command)
    is not a client's attempt: it is passed on to the next backend instead of being refused as axes does.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
