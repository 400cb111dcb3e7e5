from django.apps import AppConfig


class FlowPilotConfig(AppConfig):
    name = "flowpilot"
    verbose_name = "FlowPilot"

    def ready(self) -> None:
        from flowpilot import checks  # noqa: F401  (registers the system checks)
