"""Role checks for views: a decorator that renders a real 403 page, not a bare error."""

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from resolutionflow.models import Role


def role_required(*roles: str) -> Callable:
    """Allow only users of an account with one of ``roles`` (403 page otherwise)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            user = request.user
            if user.account_id is None or user.role not in roles:
                raise PermissionDenied("Your role does not allow this page.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


senior_required = role_required(Role.ENGINEER, Role.ADMIN)
admin_required = role_required(Role.ADMIN)
any_member_required = role_required(Role.TECHNICIAN, Role.ENGINEER, Role.ADMIN)
