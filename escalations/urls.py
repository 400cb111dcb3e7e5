from django.urls import path

from escalations import streams, views

app_name = "escalations"
urlpatterns = [
    path("escalations/", views.queue, name="queue"),
    path("escalations/events/", streams.queue_events, name="queue_events"),
    path("notifications/events/", streams.notification_events, name="notification_events"),
    path("handoffs/<uuid:handoff_id>/events/", streams.handoff_events, name="handoff_events"),
]
