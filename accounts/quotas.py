"""Per-user limits: storage bytes and concurrent runs. Defaults in settings, per-user overrides on the User row.

The storage check is here; the concurrent-run limit (``User.effective_run_limit``) is applied where runs are
admitted, in ``analysis.runs.services``."""

from __future__ import annotations


class QuotaExceeded(Exception):
    """A write would take a user over one of their limits. ``str(error)`` is a message for the user."""

    def __init__(self, message: str, *, limit: int, used: int, requested: int):
        super().__init__(message)
        self.message = message
        self.limit = limit
        self.used = used
        self.requested = requested


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def storage_left(user, *, used: int) -> int:
    """Bytes ``user`` may still store, given the bytes their uploads already take (``used``, counted by the
    projects app: accounts does not import projects)."""
    return max(0, user.effective_storage_quota - used)


def check_storage(user, incoming_bytes: int, *, used: int) -> None:
    """Raise QuotaExceeded if keeping ``incoming_bytes`` more would exceed the user's storage quota.

    Call before anything is written, with the size of what arrives and the bytes already ``used`` (counted by
    the projects app).
    """
    if incoming_bytes < 0:
        raise ValueError("incoming_bytes must not be negative")
    limit = user.effective_storage_quota
    if used + incoming_bytes > limit:
        raise QuotaExceeded(
            f"This upload needs {human_bytes(incoming_bytes)} but only {human_bytes(max(0, limit - used))} of "
            f"your {human_bytes(limit)} storage quota is left ({human_bytes(used)} used). Delete uploads you no "
            "longer need, or ask an administrator for a larger quota.",
            limit=limit,
            used=used,
            requested=incoming_bytes,
        )
