"""ASGI entry point: the only way to serve ResolutionFlow (event streams need it)."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resolutionflow.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

from resolutionflow.env import ConfigError  # noqa: E402

try:
    application = get_asgi_application()
except ConfigError as error:
    sys.exit(f"Configuration error: {error}")
