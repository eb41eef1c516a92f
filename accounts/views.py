"""Account pages: home, self sign-up, usage and limits, API tokens. Sign-in, sign-out and passwords are Django's
auth views."""

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import LockedSignInForm, SignUpForm, TokenCreateForm
from accounts.quotas import human_duration


RECENT_PROJECTS = 5


def home(request):
    """The first page after sign-in: what to do next (each step marked done once done) and recent projects."""
    from projects import selectors as project_selectors
    from projects.models import PROJECT_RELATION, UploadKind

    user = request.user
    projects = project_selectors.projects_visible_to(user)
    has = {kind: project_selectors.uploads_visible_to(user, kind).exists() for kind in UploadKind}
    ready = projects.filter(**{f"{PROJECT_RELATION[UploadKind.MODEL]}__isnull": False,
                               f"{PROJECT_RELATION[UploadKind.CORPUS]}__isnull": False}).exists()
    recent = projects.select_related("owner").order_by("-updated_at", "-id")[:RECENT_PROJECTS]
    steps = [
        {"title": "Upload a model", "done": has[UploadKind.MODEL], "url": reverse("projects:upload", args=["model"]),
         "text": "A HuggingFace model folder with safetensors weights (as files or one .zip / .tar.gz)."},
        {"title": "Upload a corpus", "done": has[UploadKind.CORPUS],
         "url": reverse("projects:upload", args=["corpus"]),
         "text": "Words with per-word labels: CoNLL-U, or the NeuroX .word / .label files."},
        {"title": "Create a project", "done": bool(recent), "url": reverse("projects:list") + "#create-form",
         "text": "A project is where you and your colleagues (owners, editors, viewers) work together."},
        {"title": "Add the model and the corpus to the project", "done": ready,
         "url": recent[0].get_absolute_url() if recent else reverse("projects:list"),
         "text": "On the project's page, under “Add from your library”."},
    ]
    return render(request, "home.html", {
        "steps": steps, "steps_left": sum(not step["done"] for step in steps), "recent_projects": recent,
    })


def signin_locked_out(request, original_response=None, credentials=None):
    """The sign-in page (or the admin's) saying that sign-in is locked and when to try again (django-axes'
    AXES_LOCKOUT_CALLABLE). Each attempt while locked starts the wait again, so the wait is counted from now."""
    minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    retry_at = timezone.localtime(timezone.now() + settings.AXES_COOLOFF_TIME)
    message = (
        f"Too many failed sign-in attempts for this account or from your network address. Sign-in is locked: "
        f"try again in {minutes} minutes, after {retry_at:%H:%M} ({retry_at.tzname()}). Every attempt before then "
        "starts the wait again. Forgotten your password? Reset it instead."
    )
    form = LockedSignInForm(request, data=request.POST or None, lock_message=message)
    if request.path == reverse("admin:login"):
        context = {**admin.site.each_context(request), "form": form, "app_path": request.get_full_path()}
        response = render(request, "admin/login.html", context, status=429)
    else:
        response = render(request, "registration/login.html", {"form": form, "next": request.POST.get("next", "")},
                          status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


@login_not_required
@require_http_methods(["GET", "POST"])
def signup(request):
    if not settings.NEUROX_ALLOW_SIGNUP:
        if settings.NEUROX_OIDC_ENABLED:
            raise Http404(f"Self sign-up is turned off on this site. Use “Sign in with {settings.NEUROX_OIDC_NAME}” "
                          "on the sign-in page: your first sign-in creates your account.")
        raise Http404("Self sign-up is turned off on this site; ask an administrator for an account.")
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.sign_up(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. Your account is ready.")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


def _tokens_response(request, form, new_secret=None, new_token=None, status=200):
    context = {
        "form": form,
        "tokens": selectors.tokens_of(request.user),
        "new_secret": new_secret,
        "new_token": new_token,
    }
    template = "accounts/tokens.html#token-panel" if request.htmx else "accounts/tokens.html"
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
def tokens(request):
    """List the user's tokens and create one (its secret is in this one response only)."""
    if request.method == "GET":
        return _tokens_response(request, TokenCreateForm())
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _tokens_response(request, form, status=400)
    token, secret = services.create_token(request.user, form.cleaned_data["name"], form.expires_at())
    response = _tokens_response(request, TokenCreateForm(), new_secret=secret, new_token=token)
    response["Cache-Control"] = "no-store"  # the secret must not linger in caches
    return response


@require_POST
def revoke_token(request, token_id: int):
    try:
        token = selectors.token_of(request.user, token_id)
    except selectors.ApiToken.DoesNotExist:
        raise Http404("No such token.") from None
    services.revoke_token(token)
    if request.htmx:
        return _tokens_response(request, TokenCreateForm())
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("accounts:tokens")


def _share(used: float, limit: float) -> int:
    return 100 if limit <= 0 and used > 0 else (0 if limit <= 0 else min(100, round(100 * used / limit)))


def usage(request):
    """What the user uses against each of their limits (user → quota group → site default): storage (uploads
    and their runs' results), compute-seconds this period, the largest run, concurrent runs."""
    from analysis.runs.selectors import active_runs_of, compute_seconds_used, waiting_runs_of

    from accounts.quotas import human_bytes, storage_use

    user = request.user
    use = storage_use(user)  # the registered counters: projects' "uploads", analysis's "results"
    storage = {"uploads": use.get("uploads", 0), "results": use.get("results", 0), "used": sum(use.values()),
               "quota": user.limit("storage_quota_bytes")}
    storage["share"] = _share(storage["used"], storage["quota"])
    storage["text"] = {key: human_bytes(value) for key, value in storage.items() if key != "share"}
    seconds = compute_seconds_used(user)
    quota = user.limit("compute_quota_seconds")
    compute = {"used": seconds, "quota": quota, "share": _share(seconds, quota),
               "left": max(0.0, quota - seconds), "period_days": settings.NEUROX_COMPUTE_PERIOD_DAYS,
               "text": {"used": human_duration(seconds), "quota": human_duration(quota),
                        "left": human_duration(max(0.0, quota - seconds)),
                        "per_run": human_duration(user.limit("max_run_compute_seconds"))},
               "per_run": user.limit("max_run_compute_seconds")}
    runs = {"active": active_runs_of(user.pk), "waiting": waiting_runs_of(user.pk),
            "limit": user.limit("max_concurrent_runs")}
    return render(request, "accounts/usage.html", {
        "storage": storage, "compute": compute, "runs": runs, "group": user.quota_group,
    })
