from django.urls import path

from flowpilot import views

app_name = "flowpilot"
urlpatterns = [
    path("", views.sessions, name="sessions"),
    path("sessions/", views.start_session, name="start_session"),
    path("sessions/<int:session_id>/", views.session_detail, name="session"),
    path("sessions/<int:session_id>/messages", views.post_message, name="post_message"),
    path("sessions/<int:session_id>/resolve", views.resolve_session, name="resolve"),
    path("sessions/<int:session_id>/tasks", views.tasks, name="tasks"),
    path("sessions/<int:session_id>/tasks/<int:task_id>", views.update_task, name="task"),
    path("sessions/<int:session_id>/tasks/<int:task_id>/move", views.move_task, name="move_task"),
]
