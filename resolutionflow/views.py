"""Core pages: the role-aware landing redirect and friendly error pages."""

import sys

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

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
    template_name = "registration/login.html"
    redirect_authenticated_user = True


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
