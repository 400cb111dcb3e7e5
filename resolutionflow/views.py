"""Core pages: the role-aware landing redirect and friendly error pages."""

import math
import sys

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from resolutionflow.forms import SignInForm
from resolutionflow.models import Role
from resolutionflow.unavailable import is_unavailable, unavailable_response

LANDING_BY_ROLE = {
    Role.TECHNICIAN: "flowpilot:sessions",
    Role.ENGINEER: "escalations:queue",
    Role.ADMIN: "analytics:dashboard",
}


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Send each person to the page of their role."""
    if request.user.account_id is None:
        # A bare superuser without an account: only the Django admin makes sense.
        return redirect("admin:index")
    return redirect(LANDING_BY_ROLE.get(request.user.role, "flowpilot:sessions"))


class LoginView(auth_views.LoginView):
    """Sign-in, limited by account name and by address (resolutionflow/ratelimit.py).

    A refusal for too many failures is a 429 with ``Retry-After``, the page saying how long
    to wait, the name as typed (never the password). GET and POST only: no PUT.
    """

    template_name = "registration/login.html"
    redirect_authenticated_user = True
    form_class = SignInForm
    http_method_names = ["get", "post", "head", "options"]

    def form_invalid(self, form: SignInForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.retry_after:
            response.status_code = 429
            response["Retry-After"] = str(max(1, math.ceil(form.retry_after)))
        return response


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    """A request no page can read (a form post that is not UTF-8, a body too large)."""
    return render(request, "400.html", {"reason": str(exception or "")}, status=400)


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def page_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500, called inside the ``except`` of the failed request.

    A database that cannot be reached is an outage, not a bug: 503 with Retry-After.
    """
    if is_unavailable(sys.exc_info()[1]):
        return unavailable_response(request)
    return render(request, "500.html", status=500)
