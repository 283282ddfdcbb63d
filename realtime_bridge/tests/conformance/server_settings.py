"""The suite's own server process: the project's settings plus the `conformance_notes` table (notes.py)."""

from velocity.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "realtime_bridge.tests.conformance.notes.NotesConfig"]  # noqa: F405
