"""Core pages: the role-aware landing redirect and friendly error pages."""

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from resolutionflow.models import Role

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


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    """A request no page can read (a form post that is not UTF-8, a body too large)."""
    return render(request, "400.html", {"reason": str(exception or "")}, status=400)


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def page_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "500.html", status=500)
