from django.apps import AppConfig


class ResolutionFlowConfig(AppConfig):
    name = "resolutionflow"
    verbose_name = "ResolutionFlow core"

    def ready(self) -> None:
        # django-eventstream's Redis listener dies on the first Redis error; ours reconnects
        # and makes connected clients catch up from storage.
        from resolutionflow import eventstream_redis

        eventstream_redis.install()

        # The idle timeout counts from sign-in: the session saved then needs no save again
        # for the next few minutes (resolutionflow/sessions.py).
        from django.contrib.auth.signals import user_logged_in

        from resolutionflow import sessions

        user_logged_in.connect(sessions.stamp_at_sign_in, dispatch_uid="rf-idle-timeout")
