"""HTML and script in project ids: refused by the API, escaped wherever operators see them.

The API's pattern refuses markup outright. A row written past the API (an older client, a direct
database write) must still be shown escaped: the admin's session list and detail pages, and the
dashboard when it is there, are fetched as a logged-in operator and searched for the raw markup.
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from urllib.parse import urlencode

import httpx

from resilience.context import Context, bearer, error_code, token
from resilience.report import Outcome

PAYLOADS = [
    '<script>alert("xss")</script>',
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)//<svg/onload=alert(1)>",
]
OPERATOR_PASSWORD = "resilience-operator-password"  # noqa: S105  (a throwaway account in a temp database)


def check_api(ctx: Context, out: Outcome) -> None:
    for payload in PAYLOADS:
        response = httpx.post(f"{ctx.api}/sessions/", json={"project_id": payload}, headers=bearer(token()), timeout=10)
        out.check(
            response.status_code == 400,
            f"POST project_id {payload[:24]!r}: 400 {error_code(response)}",
            f"POST project_id {payload!r}: {response.status_code}",
        )


def plant_rows() -> list[tuple[str, str]]:
    from django.utils import timezone

    from sessions.models import PreviewSession

    now = timezone.now()
    rows = [
        PreviewSession.objects.create(
            user_id=uuid.uuid4(), project_id=p, status="active", started_at=now, expires_at=now + timedelta(minutes=5)
        )
        for p in PAYLOADS
    ]
    return [(str(row.id), str(row.user_id)) for row in rows]


def operator_client(ctx: Context) -> httpx.Client:
    ctx.stack.manage("ensure_operator")
    client = httpx.Client(base_url=ctx.stack.base_url, timeout=20, follow_redirects=True)
    page = client.get("/admin/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    data = {"username": "admin", "password": OPERATOR_PASSWORD, "csrfmiddlewaretoken": csrf.group(1) if csrf else ""}
    client.post("/admin/login/?next=/admin/", data=data, headers={"Referer": f"{ctx.stack.base_url}/admin/login/"})
    return client


def check_pages(ctx: Context, out: Outcome, rows: list[tuple[str, str]]) -> None:
    pages = [
        "/admin/preview_sessions/previewsession/",
        *(f"/admin/preview_sessions/previewsession/{i}/change/" for i, _ in rows),
        "/dashboard/",
        *(f"/dashboard/users/{user}/" for _, user in rows),  # the user page lists their projects
        *(f"/dashboard/sessions/?{urlencode({'q': p})}" for p in PAYLOADS),  # search echoes what was typed
        *(f"/dashboard/audit/?{urlencode({'target': p, 'since': p})}" for p in PAYLOADS),
    ]
    client = operator_client(ctx)
    try:
        for path in pages:
            response = client.get(path)
            if response.status_code == 404 and path.startswith("/dashboard/"):
                out.saw(f"{path[:40]} answers 404: the dashboard is not merged here; not checked")
                continue
            raw = [p for p in PAYLOADS if p in response.text]
            shown = sum(
                html.escape(p, quote=False) in response.text or html.escape(p) in response.text for p in PAYLOADS
            )
            out.check(
                response.status_code == 200 and "/admin/login/" not in str(response.url) and not raw,
                f"{path[:60]}: 200, no raw markup; {shown} of {len(PAYLOADS)} ids shown escaped",
                f"{path}: status {response.status_code} at {response.url}, raw markup {raw}",
            )
    finally:
        client.close()


def run(ctx: Context, out: Outcome) -> None:
    out.step(f"POST {len(PAYLOADS)} project ids carrying markup; plant the same ids in the database")
    check_api(ctx, out)
    rows = plant_rows()
    out.step("log in as the operator and read the admin pages and the dashboard (its user pages, search, audit)")
    check_pages(ctx, out, rows)
