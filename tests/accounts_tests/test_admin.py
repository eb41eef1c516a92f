import pytest
from django.urls import reverse

from accounts.services import create_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, make_user):
    client.force_login(make_user(username="root", is_staff=True, is_superuser=True))
    return client


def test_admin_edits_user_quotas(admin_client_, user):
    url = reverse("admin:accounts_user_change", args=[user.pk])
    page = admin_client_.get(url)
    assert page.status_code == 200 and b"storage_quota_bytes" in page.content
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in {"groups", "user_permissions", "password"}}
    data.update({
        "storage_quota_bytes": "1000", "max_concurrent_runs": "4",
        "last_login_0": "", "last_login_1": "", "date_joined_0": "2024-01-01", "date_joined_1": "00:00:00",
        "api_tokens-TOTAL_FORMS": "0", "api_tokens-INITIAL_FORMS": "0",
        "external_identities-TOTAL_FORMS": "0", "external_identities-INITIAL_FORMS": "0",
    })
    response = admin_client_.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    user.refresh_from_db()
    assert (user.effective_storage_quota, user.effective_run_limit) == (1000, 4)


def test_admin_links_an_account_to_a_university_identity_and_edits_group_rules(admin_client_, user):
    from accounts.models import QuotaGroup
    from accounts.services import sign_in_with_identity

    url = reverse("admin:accounts_user_change", args=[user.pk])
    form = admin_client_.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in {"groups", "user_permissions", "password"}}
    data.update({
        "last_login_0": "", "last_login_1": "", "date_joined_0": "2024-01-01", "date_joined_1": "00:00:00",
        "api_tokens-TOTAL_FORMS": "0", "api_tokens-INITIAL_FORMS": "0",
        "external_identities-TOTAL_FORMS": "1", "external_identities-INITIAL_FORMS": "0",
        "external_identities-0-issuer": "https://login.example.edu", "external_identities-0-subject": "s-42",
    })
    assert admin_client_.post(url, data).status_code == 302
    # The linked account is the one the university sign-in finds, whatever its e-mail claim says.
    assert sign_in_with_identity(issuer="https://login.example.edu",
                                 claims={"sub": "s-42", "email": "other@example.edu"}).pk == user.pk

    response = admin_client_.post(reverse("admin:accounts_quotagroup_add"), {
        "name": "Students", "rules-TOTAL_FORMS": "1", "rules-INITIAL_FORMS": "0",
        "rules-0-priority": "10", "rules-0-kind": "email_domain", "rules-0-claim": "",
        "rules-0-value": "@Students.Example.edu",
    })
    assert response.status_code == 302
    rule = QuotaGroup.objects.get(name="Students").rules.get()
    assert rule.value == "students.example.edu"  # cleaned: no @, lower case


def test_admin_token_list_and_revoke_action(admin_client_, user):
    token, _ = create_token(user, "cluster")
    changelist = reverse("admin:accounts_apitoken_changelist")
    assert b"cluster" in admin_client_.get(changelist).content
    response = admin_client_.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_non_staff_cannot_reach_admin(auth_client):
    response = auth_client.get(reverse("admin:accounts_user_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
