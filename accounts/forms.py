from datetime import timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.utils import timezone


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="Used for password resets.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this e-mail address already exists.")
        return email


class LockedSignInForm(AuthenticationForm):
    """The sign-in form while sign-in is locked: it keeps what was typed and shows the lock, and never checks
    the password (that would count as one more attempt)."""

    def __init__(self, request=None, *args, lock_message: str, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.lock_message = lock_message

    def clean(self):
        raise forms.ValidationError(self.lock_message, code="locked")


EXPIRY_CHOICES = [
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
    ("never", "Never"),
]


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What will use it, e.g. “laptop scripts” or “cluster job”."
    )
    expires_in = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90", label="Expires after")

    def expires_at(self):
        choice = self.cleaned_data["expires_in"]
        if choice == "never":
            return None
        return timezone.now() + timedelta(days=int(choice))
