from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

import escalations.api
import escalations.views
from resolutionflow import views
from resolutionflow.http import page_or_api

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", login_not_required(views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # Escalation has one entry point, the handoff manager's, under the session it escalates.
    path(
        "flowpilot/sessions/<int:session_id>/escalate",
        page_or_api(escalations.views.escalate, escalations.api.escalate),
        name="escalate",
    ),
    path("flowpilot/", include("flowpilot.urls")),
    path("", include("escalations.urls")),
    path("analytics/", include("analytics.urls")),
]

handler400 = "resolutionflow.views.bad_request"
handler403 = "resolutionflow.views.permission_denied"
handler404 = "resolutionflow.views.page_not_found"
handler500 = "resolutionflow.views.server_error"
