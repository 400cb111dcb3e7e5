"""FlowPilot pages."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from flowpilot.models import Session
from resolutionflow.permissions import any_member_required


@require_GET
@any_member_required
def sessions(request: HttpRequest) -> HttpResponse:
    my_sessions = Session.objects.filter(account_id=request.user.account_id, owner=request.user)
    return render(request, "flowpilot/sessions.html", {"sessions": my_sessions})
