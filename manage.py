#!/usr/bin/env python
"""Django's command-line utility for ResolutionFlow."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resolutionflow.settings")
    from django.core.management import execute_from_command_line

    from resolutionflow.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as error:
        sys.exit(f"Configuration error: {error}")


if __name__ == "__main__":
    main()
