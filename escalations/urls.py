from django.urls import path

from escalations import api, bell, streams, takeover, views
from resolutionflow.http import page_or_api

app_name = "escalations"
urlpatterns = [
    path("escalations/", page_or_api(views.queue, api.queue), name="queue"),
    path("escalations/recent/", views.recent, name="queue_recent"),
    path("escalations/mine/", views.mine, name="queue_mine"),
    path("escalations/re-alerts/", views.realert_settings, name="realert_settings"),
    path("escalations/events/", streams.queue_events, name="queue_events"),
    path("notifications/events/", streams.notification_events, name="notification_events"),
    path("handoffs/<uuid:handoff_id>/", page_or_api(views.handoff, api.handoff), name="handoff"),
    path("handoffs/<uuid:handoff_id>/card", views.card, name="card"),
    path("handoffs/<uuid:handoff_id>/preview", views.preview, name="preview"),
    path("handoffs/<uuid:handoff_id>/claim", page_or_api(views.claim, api.claim), name="claim"),
    path(
        "handoffs/<uuid:handoff_id>/release",
        page_or_api(views.release, api.release),
        name="release",
    ),
    path(
        "handoffs/<uuid:handoff_id>/resolve",
        page_or_api(views.resolve, api.resolve),
        name="resolve",
    ),
    path("handoffs/<uuid:handoff_id>/events/", streams.handoff_events, name="handoff_events"),
    # Who else has the handoff's screen open: its heartbeat and its beacon on leaving.
    path("handoffs/<uuid:handoff_id>/presence", views.presence, name="presence"),
    path("handoffs/<uuid:handoff_id>/presence/leave", views.presence_leave, name="presence_leave"),
    # Taking a handoff over: the assessment card, the two ways to claim, the claimer's panel
    # on the chat page (escalations/takeover.py).
    path("handoffs/<uuid:handoff_id>/assessment", takeover.assessment, name="assessment"),
    path("handoffs/<uuid:handoff_id>/stands", takeover.stands, name="stands"),
    path(
        "handoffs/<uuid:handoff_id>/assessment/refresh",
        takeover.refresh_assessment,
        name="refresh_assessment",
    ),
    path("handoffs/<uuid:handoff_id>/take-over", takeover.take_over, name="take_over"),
    path("handoffs/<uuid:handoff_id>/steps/open", takeover.open_step, name="open_step"),
    path("handoffs/sessions/<int:session_id>/panel", takeover.session_panel, name="session_panel"),
    path(
        "handoffs/sessions/<int:session_id>/events/",
        streams.session_events,
        name="session_events",
    ),
    # The bell: the signed-in person's notifications (escalations/bell.py).
    path("notifications/", page_or_api(bell.bell, api.notifications), name="bell"),
    path(
        "notifications/<int:notification_id>/read/",
        page_or_api(bell.mark_read, api.mark_read),
        name="notification_read",
    ),
    path(
        "notifications/read-all/",
        page_or_api(bell.mark_all_read, api.mark_all_read),
        name="notifications_read_all",
    ),
]
