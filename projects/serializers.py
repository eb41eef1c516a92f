"""REST serializers for projects, memberships and uploads.

They describe and check the *shape* of requests and responses; every decision (who may do what, whether an
upload is acceptable, what a name must look like) is taken by :mod:`projects.services`, whose messages reach the
client unchanged (see ``neurox_site.api_errors.api_exception_handler``).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import CorpusFormat, CorpusUpload, Membership, ModelUpload, Project, Role, TestSetUpload, UploadKind

# ---------------------------------------------------------------------------------------------- projects


class ProjectSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True,
                                  help_text="Username of the person who created the project.")
    role = serializers.SerializerMethodField(help_text="Your role in this project: owner, editor or viewer.")
    # The service decides whether a name is acceptable (its message is the one clients see), so blank
    # is let through here.
    name = serializers.CharField(max_length=200, allow_blank=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "owner", "role", "is_example", "created_at", "updated_at"]
        read_only_fields = ["id", "owner", "role", "is_example", "created_at", "updated_at"]

    @extend_schema_field(serializers.ChoiceField(choices=Role.choices))
    def get_role(self, project):
        return getattr(project, "my_role", None)


# ---------------------------------------------------------------------------------------------- members


class MemberUserSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)


class MembershipSerializer(serializers.ModelSerializer):
    user = MemberUserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]
        read_only_fields = ["id", "user", "created_at"]


class AddMemberSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=254, help_text="Username or e-mail address of the person to add.")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class ChangeRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


# ---------------------------------------------------------------------------------------------- uploads


UPLOAD_COMMON_FIELDS = ["id", "uuid", "name", "description", "owner", "created_at", "size_bytes", "sha256", "files",
                        "metadata"]


class UploadSerializerBase(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    files = serializers.DictField(child=serializers.CharField(), read_only=True,
                                  help_text="Stored file name → sha256.")
    metadata = serializers.DictField(read_only=True, help_text="What validation found; `notes` lists what the "
                                     "uploader should know (files ignored, line-end whitespace, same content "
                                     "uploaded before).")

    class Meta:
        read_only_fields = [f for f in UPLOAD_COMMON_FIELDS if f not in ("name", "description")]


class ModelUploadSerializer(UploadSerializerBase):
    class Meta(UploadSerializerBase.Meta):
        model = ModelUpload
        fields = [*UPLOAD_COMMON_FIELDS, "model_type", "architecture", "model_kind", "n_layers", "hidden_size",
                  "n_parameters"]
        read_only_fields = [*UploadSerializerBase.Meta.read_only_fields, "model_type", "architecture",
                            "model_kind", "n_layers", "hidden_size", "n_parameters"]


class CorpusUploadSerializer(UploadSerializerBase):
    class Meta(UploadSerializerBase.Meta):
        model = CorpusUpload
        fields = [*UPLOAD_COMMON_FIELDS, "format", "label_column", "n_sentences", "n_words", "n_labels"]
        read_only_fields = [*UploadSerializerBase.Meta.read_only_fields, "format", "label_column", "n_sentences",
                            "n_words", "n_labels"]


class TestSetUploadSerializer(UploadSerializerBase):
    __test__ = False  # not a pytest class

    class Meta(UploadSerializerBase.Meta):
        model = TestSetUpload
        fields = [*UPLOAD_COMMON_FIELDS, "n_sentences", "has_references"]
        read_only_fields = [*UploadSerializerBase.Meta.read_only_fields, "n_sentences", "has_references"]


class UploadRenameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)


class UploadCreateBase(serializers.Serializer):
    """Files may be empty here: the service refuses them with a message that names the file."""

    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                 help_text="Optional; defaults to the file's name.")
    description = serializers.CharField(required=False, allow_blank=True, default="")


class ModelUploadCreateSerializer(UploadCreateBase):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                 help_text="Optional; defaults to the architecture and size, e.g. "
                                 "\"BertModel · 22.7M params\".")
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), allow_empty=False,
        help_text="One .zip / .tar.gz of the model folder, or the files themselves (config.json, *.safetensors, "
        "tokenizer files), each sent as a `files` part. Only safetensors weights are accepted.",
    )


class CorpusUploadCreateSerializer(UploadCreateBase):
    format = serializers.ChoiceField(choices=CorpusFormat.choices, default=CorpusFormat.CONLLU)
    label_column = serializers.CharField(
        required=False, allow_blank=True, default="upos",
        help_text="CoNLL-U only: upos, xpos, deprel or feats:<Key> (e.g. feats:Number); empty for words only. "
        "Ignored for the plain format, whose labels come from `label_file`.",
    )
    file = serializers.FileField(allow_empty_file=True, help_text="A .conllu file, or the .word file of the NeuroX plain format.")
    label_file = serializers.FileField(required=False, allow_empty_file=True,
                                       help_text="Plain format only: the line-aligned .label file (optional).")


class TestSetUploadCreateSerializer(UploadCreateBase):
    __test__ = False

    file = serializers.FileField(allow_empty_file=True, help_text="Source sentences, one per line (UTF-8).")
    reference_file = serializers.FileField(
        required=False, allow_empty_file=True, help_text="References, line-aligned with the sources (needed for encoder–decoder models).",
    )


# ---------------------------------------------------------------------------------------------- attachments


class AttachedUploadSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=UploadKind.choices, read_only=True)
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    size_bytes = serializers.IntegerField(read_only=True)
    sha256 = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class AttachSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=UploadKind.choices)
    upload = serializers.IntegerField(min_value=1, help_text="The upload's id (from /api/v1/uploads/<kind>/).")


class UploadRefusedSerializer(serializers.Serializer):
    """The body of a refused upload (documentation only)."""

    detail = serializers.CharField(help_text="What is wrong, naming the file and line where it applies.")
    code = serializers.CharField(help_text="archive, model, corpus, test_set, quota, too_large or invalid")
