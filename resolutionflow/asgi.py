"""ASGI entry point: the only way to serve ResolutionFlow (event streams need it)."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resolutionflow.settings")

import django  # noqa: E402

from resolutionflow.env import ConfigError  # noqa: E402

try:
    django.setup(set_prefix=False)
except ConfigError as error:
    sys.exit(f"Configuration error: {error}")

from resolutionflow.handler import ConnectionReleasingASGIHandler  # noqa: E402

# Django's get_asgi_application(), with a handler that gives back every request's database
# connections however the request ends (see resolutionflow/handler.py).
application = ConnectionReleasingASGIHandler()

# Embedded mode has no worker: the web process runs the beat's drain (and what apps hang on
# it, such as re-alerts of unclaimed handoffs) itself. A no-op with a worker.
from resolutionflow.embedded_beat import start_embedded_beat  # noqa: E402

start_embedded_beat()
