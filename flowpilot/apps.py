from django.apps import AppConfig


class FlowPilotConfig(AppConfig):
    name = "flowpilot"
    verbose_name = "FlowPilot"
