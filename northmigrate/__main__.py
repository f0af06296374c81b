"""The ``northmigrate`` command (``python -m northmigrate`` and the console script).

The CLI is imported inside :func:`main`, so that a Ctrl-C while it loads gives the one-line
``Error: interrupted`` and exit 130 like any other interruption.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from northmigrate.cli.app import run
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted\n")
        sys.exit(130)
    sys.exit(run())


if __name__ == "__main__":
    main()
