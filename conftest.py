pytest_plugins = ["velocity.testing"]
