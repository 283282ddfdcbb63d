"""Fixtures of the dashboard's browser tests (``browser.py``)."""

from dashboard.tests.browser import page, server

__all__ = ["page", "server"]
