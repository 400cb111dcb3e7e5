"""Analytics' JSON API (docs/API.md): the FlowPilot escalation figures of a window."""

from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from analytics import metrics
from analytics.forms import InvalidWindow, parse_window
from resolutionflow.http import ApiError, api_view, invalid
from resolutionflow.models import Role

_SENIORS_ONLY = "Only engineers and admins see analytics."


@api_view(
    methods=["GET"],
    roles=[Role.ENGINEER, Role.ADMIN],
    # ``reason`` is the message's older name, kept for clients that read it.
    role_refusal=ApiError(403, "forbidden", _SENIORS_ONLY, reason=_SENIORS_ONLY),
)
def flowpilot_escalations(request: HttpRequest) -> JsonResponse:
    """GET /analytics/flowpilot/escalations?from=YYYY-MM-DD&to=YYYY-MM-DD."""
    try:
        window = parse_window(request.GET, today=timezone.localdate())
    except InvalidWindow as error:
        return invalid(error.errors)
    summary = metrics.escalation_summary(request.user.account_id, window, now=timezone.now())
    return JsonResponse(summary.as_dict())
