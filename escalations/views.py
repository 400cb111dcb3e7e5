"""Escalation pages."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from resolutionflow.permissions import senior_required


@require_GET
@senior_required
def queue(request: HttpRequest) -> HttpResponse:
    return render(request, "escalations/queue.html", {})
