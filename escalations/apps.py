from django.apps import AppConfig


class EscalationsConfig(AppConfig):
    name = "escalations"
    verbose_name = "Escalations"

    def ready(self) -> None:
        # Listen to flowpilot's explicit signal (first action by the claimer).
        from escalations import receivers  # noqa: F401
