"""Analytics pages."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from resolutionflow.permissions import admin_required


@require_GET
@admin_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "analytics/dashboard.html", {})
