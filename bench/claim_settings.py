"""Settings for the claim-race bench server only: the app's settings with the bench URLconf.

Never used by the app itself. ``bench/claim_race.py`` starts uvicorn with
``DJANGO_SETTINGS_MODULE=bench.claim_settings``; the production URLs stay untouched.
"""

import os

# The development defaults for what the bench does not care about (no SECRET_KEY needed,
# no HTTPS redirect on loopback), then DEBUG off as in production: no query log in memory.
os.environ.setdefault("DEBUG", "1")

from resolutionflow.settings import *  # noqa: E402, F403

DEBUG = False
ROOT_URLCONF = "bench.claim_urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
