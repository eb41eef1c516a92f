"""HTML forms: they parse and check the shape of the input; the services decide and do the work."""

from __future__ import annotations

from django import forms

from .models import CorpusFormat, Project, Role
from .uploads import UploadRefused, check_label_column

LABEL_COLUMN_CHOICES = [
    ("upos", "UPOS (universal part of speech)"),
    ("xpos", "XPOS (language-specific part of speech)"),
    ("deprel", "DEPREL (dependency relation)"),
    ("feats", "A FEATS key (give it below)"),
    ("", "No labels (words only)"),
]


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class AddMemberForm(forms.Form):
    user = forms.CharField(label="Username or e-mail", max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class AttachForm(forms.Form):
    kind = forms.ChoiceField(choices=[("model", "model"), ("corpus", "corpus"), ("test_set", "test set")])
    upload = forms.IntegerField(min_value=1)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts several files and cleans to a list of them."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, (list, tuple)):
            return [super(MultipleFileField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)]


class UploadBaseForm(forms.Form):
    name = forms.CharField(max_length=200, required=False,
                           help_text="Optional; defaults to the model's architecture and size, or the file's name.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class UploadEditForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class ModelUploadForm(UploadBaseForm):
    files = MultipleFileField(
        label="Model files",
        help_text="One .zip or .tar.gz of the model folder, or the files themselves (config.json, *.safetensors, "
        "tokenizer files). Only safetensors weights are accepted.",
    )


class CorpusUploadForm(UploadBaseForm):
    format = forms.ChoiceField(choices=CorpusFormat.choices, initial=CorpusFormat.CONLLU)
    label_column = forms.ChoiceField(
        choices=LABEL_COLUMN_CHOICES, initial="upos", required=False, label="Label column (CoNLL-U)",
    )
    feats_key = forms.CharField(
        max_length=100, required=False, label="FEATS key", help_text="For example Number, Tense or PronType.",
    )
    file = forms.FileField(label="Corpus file", help_text="A .conllu file, or the .word file of the plain format.")
    label_file = forms.FileField(
        label="Label file (plain format)", required=False, help_text="The line-aligned .label file; optional.",
    )

    def clean(self):
        cleaned = super().clean()
        fmt = cleaned.get("format")
        if fmt == CorpusFormat.CONLLU:
            cleaned["label_file"] = None
            column = cleaned.get("label_column") or ""
            if column == "feats":
                key = (cleaned.get("feats_key") or "").strip()
                if not key:
                    self.add_error("feats_key", "Give the FEATS key to use as the label, e.g. Number.")
                    return cleaned
                cleaned["label_column"] = f"feats:{key}"
            try:  # the same check the service makes for the API, shown next to the field
                check_label_column(cleaned.get("label_column"))
            except UploadRefused as error:
                self.add_error("feats_key" if column == "feats" else "label_column", error.message)
        else:
            cleaned["label_column"] = None
        return cleaned


class TestSetUploadForm(UploadBaseForm):
    __test__ = False  # not a pytest class

    file = forms.FileField(label="Source sentences", help_text="One sentence per line (UTF-8 text).")
    reference_file = forms.FileField(
        label="References", required=False,
        help_text="One reference per line, line-aligned with the sources. Needed for encoder–decoder models.",
    )
