"""The app's URLs plus the floor: a bare view that only runs the claim's conditional UPDATE.

Mounted only by the claim-race bench (``bench/claim_settings.py``), never in production.
"""

import os

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_POST

from escalations.models import Handoff, HandoffState
from resolutionflow import events
from resolutionflow.urls import urlpatterns as app_urlpatterns

if os.environ.get("RF_BENCH_DEFER_PUBLISH") == "1":
    # Measure the claim without its after-commit publishing: events stay in the outbox for
    # the drain. Only to show how the request's time splits; the app never does this.
    events.publish_outbox_events = lambda *args, **kwargs: 0


@require_POST
def bare_claim(request: HttpRequest, handoff_id) -> JsonResponse:
    """The floor: the same conditional UPDATE as claim_handoff, and nothing else."""
    user = request.user
    won = (
        Handoff.objects.filter(
            pk=handoff_id,
            account_id=user.account_id,
            state=HandoffState.OPEN,
            claimed_by__isnull=True,
        )
        .exclude(escalated_by_id=user.pk)
        .update(state=HandoffState.CLAIMED, claimed_by_id=user.pk, claimed_at=timezone.now())
    )
    return JsonResponse({"won": bool(won)}, status=200 if won else 409)


urlpatterns = [
    path("bench/floor/<uuid:handoff_id>/claim", bare_claim, name="bench_floor_claim"),
    *app_urlpatterns,
]

handler403 = "resolutionflow.views.permission_denied"
handler404 = "resolutionflow.views.page_not_found"
handler500 = "resolutionflow.views.server_error"
