"""``var/`` is the orchestrator's alone: 0700, its files 0600, fixed on every start."""

import stat
from pathlib import Path

from django.conf import settings

from velocity.var_dir import read_or_create_secret, secure_var_dir, write_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_var_dir_and_its_files_are_made_private_again(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    (var / "jwt_secret").write_text("old")
    (var / "jwt_secret").chmod(0o644)
    (var / "machines").mkdir(mode=0o755)
    secure_var_dir(var)
    assert (mode(var), mode(var / "jwt_secret")) == (0o700, 0o600)
    assert mode(var / "machines") == 0o755  # folders inside are behind var/ itself


def test_a_secret_is_created_once_private_and_then_kept(tmp_path: Path) -> None:
    first = read_or_create_secret(tmp_path / "var", "jwt_secret")
    assert len(first) > 40
    assert read_or_create_secret(tmp_path / "var", "jwt_secret") == first
    assert (mode(tmp_path / "var"), mode(tmp_path / "var" / "jwt_secret")) == (0o700, 0o600)


def test_a_replaced_secret_file_is_never_wider_than_0600(tmp_path: Path) -> None:
    (tmp_path / "admin_password").write_text("old")
    (tmp_path / "admin_password").chmod(0o644)
    write_secret(tmp_path / "admin_password", "new")
    assert (tmp_path / "admin_password").read_text() == "new"
    assert mode(tmp_path / "admin_password") == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["admin_password"]


def test_the_settings_var_dir_is_private() -> None:
    assert mode(Path(settings.VAR_DIR)) == 0o700
