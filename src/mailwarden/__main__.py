"""Entry point of the ``mailwarden`` command."""

from mailwarden.admin.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
