"""Per-user quotas: defaults from settings, overrides on the user, and the storage check."""

import pytest

from accounts import quotas
from accounts.quotas import QuotaExceeded, check_storage

pytestmark = pytest.mark.django_db


def test_quotas_default_to_settings(user, settings):
    settings.NEUROX_DEFAULT_STORAGE_QUOTA_BYTES = 1234
    settings.NEUROX_DEFAULT_MAX_CONCURRENT_RUNS = 3
    assert user.storage_quota_bytes is None and user.max_concurrent_runs is None
    assert user.effective_storage_quota == 1234
    assert user.effective_run_limit == 3


def test_user_overrides_win_including_zero(make_user, settings):
    settings.NEUROX_DEFAULT_STORAGE_QUOTA_BYTES = 1234
    settings.NEUROX_DEFAULT_MAX_CONCURRENT_RUNS = 3
    limited = make_user(storage_quota_bytes=0, max_concurrent_runs=0)
    generous = make_user(storage_quota_bytes=10**12, max_concurrent_runs=8)
    assert (limited.effective_storage_quota, limited.effective_run_limit) == (0, 0)
    assert (generous.effective_storage_quota, generous.effective_run_limit) == (10**12, 8)


@pytest.mark.parametrize("name", ["storage_quota_bytes", "max_concurrent_runs", "max_run_compute_seconds",
                                  "compute_quota_seconds"])
def test_each_limit_is_the_users_own_else_the_groups_else_the_sites(make_user, settings, name):
    from accounts.models import LIMITS, QuotaGroup

    setattr(settings, LIMITS[name], 11)
    group = QuotaGroup.objects.create(name="Students", **{name: 22})
    nobody, member, own = make_user(), make_user(quota_group=group), make_user(quota_group=group, **{name: 0})
    assert (nobody.limit(name), member.limit(name), own.limit(name)) == (11, 22, 0)
    group.__class__.objects.filter(pk=group.pk).update(**{name: None})
    member.refresh_from_db()
    assert member.limit(name) == 11  # an empty group field falls back to the site default


def test_check_storage_allows_up_to_the_limit_and_refuses_beyond(make_user):
    user = make_user(storage_quota_bytes=5_000_000)
    check_storage(user, 2_000_000, used=3_000_000)  # exactly at the limit is allowed
    with pytest.raises(QuotaExceeded) as refused:
        check_storage(user, 2_000_001, used=3_000_000)
    message = str(refused.value)
    assert "2.0 MB" in message and "5.0 MB" in message and "3.0 MB used" in message
    assert (refused.value.limit, refused.value.used, refused.value.requested) == (5_000_000, 3_000_000, 2_000_001)


def test_storage_left_never_goes_below_zero(make_user):
    user = make_user(storage_quota_bytes=5_000_000)
    assert quotas.storage_left(user, used=3_000_000) == 2_000_000
    assert quotas.storage_left(user, used=6_000_000) == 0  # an administrator lowered the quota


def test_accounts_does_not_import_projects():
    """accounts sits below projects: the usage comes in as an argument, not through a reverse import."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(quotas))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not [name for name in imported if name.split(".")[0] == "projects"]


def test_negative_incoming_bytes_is_a_programming_error(user):
    with pytest.raises(ValueError):
        check_storage(user, -1, used=0)
