from django.urls import path

from flowpilot import api, views
from resolutionflow.http import page_or_api

app_name = "flowpilot"
# Each URL serves pages and htmx (views) and API clients (api): see resolutionflow/http.py.
urlpatterns = [
    path("", page_or_api(views.sessions, api.sessions), name="sessions"),
    path("sessions/", page_or_api(views.start_session, api.start_session), name="start_session"),
    path(
        "sessions/<int:session_id>/",
        page_or_api(views.session_detail, api.session_detail),
        name="session",
    ),
    path(
        "sessions/<int:session_id>/messages",
        page_or_api(views.post_message, api.post_message),
        name="post_message",
    ),
    path(
        "sessions/<int:session_id>/resolve",
        page_or_api(views.resolve_session, api.resolve_session),
        name="resolve",
    ),
    path("sessions/<int:session_id>/tasks", page_or_api(views.tasks, api.tasks), name="tasks"),
    path(
        "sessions/<int:session_id>/tasks/<int:task_id>",
        page_or_api(views.update_task, api.update_task),
        name="task",
    ),
    path(
        "sessions/<int:session_id>/tasks/<int:task_id>/move",
        page_or_api(views.move_task, api.move_task),
        name="move_task",
    ),
]
