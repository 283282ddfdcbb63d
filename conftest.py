# Shared fixtures, lowest layer first: each app's shipped test support (``<app>/testing.py``).
pytest_plugins = ["velocity.testing", "realtime_bridge.testing", "machines.testing", "sessions.testing"]
