# One definition of the staff operator's client, shared with the sessions tests (the preview-host checks use it).
from sessions.tests.conftest import staff_client

__all__ = ["staff_client"]
