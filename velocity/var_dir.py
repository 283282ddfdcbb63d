"""``var/`` (``VELOCITY_VAR_DIR``): the embedded mode's secrets and database, for the orchestrator's user alone.

It holds the JWT secret (enough to mint a ``service_role`` token), Django's secret key, the operator's
first password and the SQLite database, on a host where the local provider runs strangers' code. So the
folder is 0700 and every file directly in it 0600, set again on every start: a folder made by an older
version, restored from a backup or copied keeps whatever mode it had. A secret file is created 0600,
never written first and restricted after.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def secure_var_dir(path: Path) -> None:
    """Create ``path`` if needed, then make it and the files directly in it private."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            os.chmod(entry.path, FILE_MODE)


def write_secret(path: Path, value: str) -> None:
    """Write (or replace) a secret file: a 0600 temporary file renamed over it, never a wider mode."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    _create_private(temp, value)
    os.replace(temp, path)


def read_or_create_secret(directory: Path, name: str) -> str:
    """The secret in ``directory/name``, generated once; two processes starting together agree on it."""
    path = directory / name
    secure_var_dir(directory)
    with contextlib.suppress(FileExistsError):
        _create_private(path, secrets.token_urlsafe(48))
    return path.read_text().strip()


def _create_private(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
