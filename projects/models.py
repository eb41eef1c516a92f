"""Projects, memberships and the user's library of uploads (models, corpora, test sets).

Uploads belong to the user who sent them (their *library*) and can be attached to several projects. Their
files live in the storage backend (``default_storage``: local disk or S3) under
``uploads/<user id>/<uuid>/``; a row records the prefix, the file names, the size that counts towards the
owner's quota, content hashes and what validation found (``metadata``).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


# What each role may do; "write" = change the project's content (details, attached uploads, runs),
# "manage" = change who is in it and delete it.
WRITE_ROLES = frozenset({Role.OWNER, Role.EDITOR})
MANAGE_ROLES = frozenset({Role.OWNER})


class Project(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_projects",
        help_text="The person who created the project. They always keep the owner role.",
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")
    model_uploads = models.ManyToManyField("ModelUpload", blank=True, related_name="projects")
    corpus_uploads = models.ManyToManyField("CorpusUpload", blank=True, related_name="projects")
    test_set_uploads = models.ManyToManyField("TestSetUpload", blank=True, related_name="projects")
    is_example = models.BooleanField(
        default=False,
        help_text="An example project (made by `manage.py load_examples`): every signed-in user sees it as a viewer.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("projects:detail", args=[self.pk])


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="unique_membership")]
        ordering = ["project", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class UploadKind(models.TextChoices):
    MODEL = "model", "Model"
    CORPUS = "corpus", "Corpus"
    TEST_SET = "test_set", "Test set"


class Upload(models.Model):
    """Common columns of every library upload."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="%(class)ss")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    size_bytes = models.BigIntegerField(help_text="Bytes kept in storage; counts towards the owner's quota.")
    sha256 = models.CharField(max_length=64, db_index=True, help_text="Content hash (of all files together).")
    storage_prefix = models.CharField(max_length=500, help_text="Folder in the storage backend holding the files.")
    files = models.JSONField(default=dict, help_text="Stored file name (relative to the prefix) → sha256.")
    metadata = models.JSONField(default=dict, blank=True, help_text="What validation found.")

    kind: str = ""

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    def storage_name(self, relative: str) -> str:
        """The storage backend's name for one of this upload's files."""
        return f"{self.storage_prefix}/{relative}"


class ModelUpload(Upload):
    """A HuggingFace-format model directory (safetensors weights only)."""

    model_type = models.CharField(max_length=100)
    architecture = models.CharField(max_length=200)
    model_kind = models.CharField(max_length=20, help_text="encoder, decoder or encoder-decoder")
    n_layers = models.PositiveIntegerField(null=True, blank=True)
    hidden_size = models.PositiveIntegerField(null=True, blank=True)
    n_parameters = models.BigIntegerField(default=0)

    kind = UploadKind.MODEL

    @property
    def parameters_text(self) -> str:
        return f"{self.n_parameters:,}"

    class Meta(Upload.Meta):
        verbose_name = "model upload"


class CorpusFormat(models.TextChoices):
    CONLLU = "conllu", "CoNLL-U"
    PLAIN = "plain", "NeuroX plain (.word / .label)"


class CorpusUpload(Upload):
    """Words with optional per-word labels: CoNLL-U (with the chosen label column) or NeuroX plain."""

    format = models.CharField(max_length=10, choices=CorpusFormat.choices)
    label_column = models.CharField(max_length=100, blank=True, help_text="upos, xpos, deprel, feats:<Key>, "
                                    "'label' for the plain format, empty for no labels")
    n_sentences = models.PositiveIntegerField(default=0)
    n_words = models.PositiveIntegerField(default=0)
    n_labels = models.PositiveIntegerField(default=0)

    kind = UploadKind.CORPUS

    class Meta(Upload.Meta):
        verbose_name = "corpus upload"
        verbose_name_plural = "corpus uploads"


class TestSetUpload(Upload):
    """Source sentences (and optional line-aligned references) for model-level ablation."""

    n_sentences = models.PositiveIntegerField(default=0)
    has_references = models.BooleanField(default=False)

    kind = UploadKind.TEST_SET
    __test__ = False  # the name starts with "Test": keep pytest from collecting it

    class Meta(Upload.Meta):
        verbose_name = "test set upload"


# The Project field that attaches each kind of upload.
PROJECT_RELATION = {
    UploadKind.MODEL: "model_uploads",
    UploadKind.CORPUS: "corpus_uploads",
    UploadKind.TEST_SET: "test_set_uploads",
}
UPLOAD_MODELS = {UploadKind.MODEL: ModelUpload, UploadKind.CORPUS: CorpusUpload, UploadKind.TEST_SET: TestSetUpload}
