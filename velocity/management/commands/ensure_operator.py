import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from velocity.var_dir import write_secret


class Command(BaseCommand):
    help = "Create the operator account 'admin' if it is missing (password from VELOCITY_ADMIN_PASSWORD)."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        password_file = settings.VAR_DIR / "admin_password"
        password = os.environ.get("VELOCITY_ADMIN_PASSWORD", "")
        user = user_model.objects.filter(username="admin").first()
        if user is None:
            if not password:
                password = secrets.token_urlsafe(12)
                write_secret(password_file, password)
            user_model.objects.create_superuser("admin", email="", password=password)
            self.stdout.write("created operator 'admin'")
        elif password and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write("updated the password of operator 'admin' from VELOCITY_ADMIN_PASSWORD")
        self.stdout.write(self._login_line(password, password_file))

    @staticmethod
    def _login_line(password: str, password_file: Any) -> str:
        if os.environ.get("VELOCITY_ADMIN_PASSWORD"):
            return "operator login: admin / (VELOCITY_ADMIN_PASSWORD)"
        if password_file.exists():
            return f"operator login: admin / {password_file.read_text().strip()}"
        return "operator login: admin / (password set earlier)"
