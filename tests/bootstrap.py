"""Loaded by pytest before Django (``-p tests.bootstrap``): the test environment's defaults.

Tests run on the development defaults (DEBUG=1: no SECRET_KEY needed, static files from
the finders); pytest-django still runs each test with settings.DEBUG False.
"""

import os

os.environ.setdefault("DEBUG", "1")
