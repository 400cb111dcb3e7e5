"""Sign-in forms, for the app's page and the Django admin's: both limited the same way."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from resolutionflow.ratelimit import SignInLimiter, sign_in_refusal


class RateLimitedSignInMixin:
    """Refuse sign-in while the name or the address is locked out; count wrong passwords.

    While locked out the password is not checked at all, so guessing on cannot tell a right
    password from a wrong one. ``retry_after`` is set when refused, for the view's 429.
    """

    retry_after: float = 0

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        limiter = SignInLimiter(self.request, username)
        wait = limiter.wait_seconds()
        if wait > 0:
            self.retry_after = wait
            raise forms.ValidationError(sign_in_refusal(wait), code="rate_limited")
        try:
            cleaned = super().clean()
        except forms.ValidationError as error:
            if getattr(error, "code", None) == "invalid_login":
                lockout = limiter.record_failure()
                if lockout:
                    self.retry_after = lockout
                    raise forms.ValidationError(
                        [error, forms.ValidationError(sign_in_refusal(lockout))]
                    ) from None
            raise
        limiter.record_success()
        return cleaned


class SignInForm(RateLimitedSignInMixin, AuthenticationForm):
    """The app's sign-in page."""


class AdminSignInForm(RateLimitedSignInMixin, AdminAuthenticationForm):
    """/admin/login/: the same limits as the app's page."""
