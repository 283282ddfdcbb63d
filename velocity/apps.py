from django.apps import AppConfig


class VelocityConfig(AppConfig):
    name = "velocity"
    verbose_name = "Velocity"

    def ready(self) -> None:
        from velocity import (
            checks,  # noqa: F401  (registers the system checks)
            pg_loaders,
        )

        pg_loaders.connect()
