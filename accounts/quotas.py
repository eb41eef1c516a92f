"""Per-user limits: storage bytes and concurrent runs. Defaults in settings, per-user overrides on the User row.

The storage check is here; the concurrent-run limit (``User.effective_run_limit``) is applied where runs are
admitted, in ``analysis.runs.services``.

**What a user's storage is** is the sum of the *storage counters* the apps above register at start-up
(``register_storage_counter`` in their ``AppConfig.ready``): projects counts the user's uploads, analysis the
results their runs refer to. accounts imports neither, and projects does not import analysis, yet every check
(an upload, a new run) and every page sees the same total through ``storage_used(user)``."""

from __future__ import annotations

from collections.abc import Callable

# name → function(user) → bytes; filled by the apps' ready() (projects: "uploads", analysis: "results")
_STORAGE_COUNTERS: dict[str, Callable] = {}


def register_storage_counter(name: str, count: Callable) -> None:
    """Count ``count(user)`` bytes, under ``name``, towards every user's storage. Registering a name again
    replaces its counter (ready() may run twice in tests)."""
    _STORAGE_COUNTERS[name] = count


def storage_use(user) -> dict[str, int]:
    """The user's storage by counter, e.g. ``{"uploads": 91_900_000, "results": 238_900_000}``."""
    return {name: int(count(user) or 0) for name, count in _STORAGE_COUNTERS.items()}


def storage_used(user) -> int:
    """Bytes of the user's storage quota in use: every registered counter together (the one total)."""
    return sum(storage_use(user).values())


class QuotaExceeded(Exception):
    """A write would take a user over one of their limits. ``str(error)`` is a message for the user."""

    def __init__(self, message: str, *, limit: int, used: int, requested: int):
        super().__init__(message)
        self.message = message
        self.limit = limit
        self.used = used
        self.requested = requested


def human_duration(seconds: float) -> str:
    """Seconds as a person reads them: "42 s", "13 min", "3.2 h"."""
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s" if seconds > 0 else "0 s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def storage_left(user, *, used: int | None = None) -> int:
    """Bytes ``user`` may still store, given the bytes already ``used`` (default: ``storage_used(user)``)."""
    return max(0, user.effective_storage_quota - (storage_used(user) if used is None else used))


def check_storage(user, incoming_bytes: int, *, used: int | None = None) -> None:
    """Raise QuotaExceeded if keeping ``incoming_bytes`` more would exceed the user's storage quota.

    Call before anything is written, with the size of what arrives; ``used`` defaults to ``storage_used(user)``
    (uploads and results).
    """
    if incoming_bytes < 0:
        raise ValueError("incoming_bytes must not be negative")
    used = storage_used(user) if used is None else used
    limit = user.effective_storage_quota
    if used + incoming_bytes > limit:
        raise QuotaExceeded(
            f"This upload needs {human_bytes(incoming_bytes)} but only {human_bytes(max(0, limit - used))} of "
            f"your {human_bytes(limit)} storage quota is left ({human_bytes(used)} used by your uploads and your "
            "runs' results). Delete uploads or runs you no longer need, or ask an administrator for a larger quota.",
            limit=limit,
            used=used,
            requested=incoming_bytes,
        )
