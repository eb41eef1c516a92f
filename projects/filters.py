"""django-filter filter sets for the projects API. They only narrow querysets that already came from
:mod:`projects.selectors`; they never widen what a user can see."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q

from .models import CorpusFormat, CorpusUpload, Membership, ModelUpload, Project, Role, TestSetUpload


class _OneValue(forms.TextInput):
    """Hands the field every value given for the parameter, so a repeated one can be refused."""

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
        return None if not values or values == [None] else values


class StrictBooleanField(forms.Field):
    """``true`` or ``false`` once, or the parameter left out; anything else is refused (400), never ignored."""

    widget = _OneValue

    def clean(self, values):
        if values is None:
            return None
        if len(values) != 1 or str(values[0]).lower() not in ("true", "false"):
            raise forms.ValidationError("Use true or false, once.", code="invalid")
        return str(values[0]).lower() == "true"


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class ProjectFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the project's name.")
    owner = django_filters.CharFilter(field_name="owner__username", lookup_expr="iexact",
                                      help_text="Username of the project's creator.")
    role = django_filters.ChoiceFilter(choices=Role.choices, method="filter_role",
                                       help_text="Only projects where you have this role.")

    class Meta:
        model = Project
        fields = ["name", "owner", "role"]

    def filter_role(self, queryset, name, value):
        user = getattr(self.request, "user", None)
        mine = Membership.objects.filter(user=user, role=value).values("project")
        if value != Role.VIEWER:
            return queryset.filter(pk__in=mine)
        member_of = Membership.objects.filter(user=user).values("project")
        return queryset.filter(Q(pk__in=mine) | (Q(is_example=True) & ~Q(pk__in=member_of)))  # examples: viewers


class UploadFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the upload's name.")
    sha256 = django_filters.CharFilter(lookup_expr="iexact", help_text="The content hash.")
    own = StrictBooleanFilter(method="filter_own",
                                       help_text="true: only your own uploads; false: only uploads shared with you "
                                       "through a project.")

    class Meta:
        fields = ["name", "sha256", "own"]

    def filter_own(self, queryset, name, value):
        user = getattr(self.request, "user", None)
        return queryset.filter(owner=user) if value else queryset.exclude(owner=user)


class ModelUploadFilter(UploadFilter):
    class Meta(UploadFilter.Meta):
        model = ModelUpload
        fields = [*UploadFilter.Meta.fields, "model_type", "model_kind"]


class CorpusUploadFilter(UploadFilter):
    format = django_filters.ChoiceFilter(choices=CorpusFormat.choices)

    class Meta(UploadFilter.Meta):
        model = CorpusUpload
        fields = [*UploadFilter.Meta.fields, "format", "label_column"]


class TestSetUploadFilter(UploadFilter):
    __test__ = False  # not a pytest class
    has_references = StrictBooleanFilter(help_text="true: only test sets with references; false: only without.")

    class Meta(UploadFilter.Meta):
        model = TestSetUpload
        fields = [*UploadFilter.Meta.fields, "has_references"]
