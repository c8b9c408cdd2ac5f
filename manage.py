#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")
    if sys.argv[1:2] == ["makemigrations"]:
        # Writing migrations signs nothing, so it may run on a checkout without a secret.
        os.environ.setdefault("DJANGO_ALLOW_NO_SECRET_KEY", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
