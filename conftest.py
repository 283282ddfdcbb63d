pytest_plugins = ["velocity.testing"]
pytest_plugins += ["realtime_bridge.testing"]  # appended by the realtime branch
