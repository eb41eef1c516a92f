"""Template context shared by every page."""

from django.conf import settings


def sidebar_projects(request):
    """The signed-in user's projects for the sidebar, through the one permission path (projects.selectors)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"sidebar_projects": []}
    from projects.selectors import projects_visible_to

    return {"sidebar_projects": projects_visible_to(user).order_by("name")[:50]}


def site_flags(request):
    return {"signup_enabled": settings.NEUROX_ALLOW_SIGNUP, "oidc_enabled": settings.NEUROX_OIDC_ENABLED,
            "oidc_name": settings.NEUROX_OIDC_NAME}


def upload_rules(request):
    """What the upload forms check in the browser before sending (static/js/uploads.js), taken from the
    server's own rules so the two cannot drift apart; the server still checks everything. Lazy: only the
    upload form's template uses it."""

    def rules():
        from projects.uploads import (ARCHIVE_SUFFIXES, DOCUMENT_PREFIXES, DOCUMENT_SUFFIXES, MODEL_FILE_SUFFIXES,
                                      PICKLE_SUFFIXES, REPOSITORY_FILES, SENTENCE_TRANSFORMERS_FILES)

        return {
            "maxBytes": settings.NEUROX_MAX_UPLOAD_BYTES,
            "archiveSuffixes": list(ARCHIVE_SUFFIXES),
            "modelFileSuffixes": list(MODEL_FILE_SUFFIXES),
            "pickleSuffixes": list(PICKLE_SUFFIXES),
            # harmless extras the server ignores and reports (projects.uploads.model_file_rule), not refusals
            "ignoredNames": sorted(REPOSITORY_FILES | SENTENCE_TRANSFORMERS_FILES),
            "ignoredSuffixes": list(DOCUMENT_SUFFIXES),
            "ignoredPrefixes": list(DOCUMENT_PREFIXES),
        }

    return {"upload_rules": rules}
