from django.apps import AppConfig


class ResolutionFlowConfig(AppConfig):
    name = "resolutionflow"
    verbose_name = "ResolutionFlow core"

    def ready(self) -> None:
        # django-eventstream's Redis listener dies on the first Redis error; ours reconnects
        # and makes connected clients catch up from storage.
        from resolutionflow import eventstream_redis

        eventstream_redis.install()
