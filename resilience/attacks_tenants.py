"""Tenant isolation: user B plays against user A through every door, with real sockets and a real agent.

A calls their project ``my-app`` (as the README's quick start does); the task cluster provisions A's
session until ``active``, with a real local agent whose project folder A fills through its own socket.
B owns a project of its own (registered by the service role) and is as honest or as hostile as each
check needs: B asks for ``my-app`` too, tries A's session and project on the REST API, joins A's topic
(private, public, with an anon key), writes A's files through every broadcast path (with a huge version,
to freeze the file), listens to ``postgres_changes`` on its own channel while A's session is created,
activated and ended, and uses A's machine's own credentials (read from the machine's config under the
local provider's var dir: the key the agent itself was given). Then A makes B a member and removes
them again. Every check is one ``out.check``; a service-role socket with B's bindings is the control
that shows A's rows were published at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from resilience.context import (
    Context,
    Peer,
    anon_token,
    bearer,
    broadcast_event,
    broadcast_frame,
    closed_with_system_error,
    error_code,
    had_system_error,
    machine_env,
    refused,
    rows,
    synced,
    token,
)
from resilience.report import Outcome

PROJECT_A = "my-app"  # the stack's database is fresh: the name is free until A's first session claims it
PAGE_V1 = "<h1>A's private page, version 1</h1>\n"
PAGE_V2 = "<h1>A's private page, version 2</h1>\n"
WRITTEN_BY_B = "<h1>written by B</h1>\n"
HUGE_VERSION = 2**53 - 1  # the largest version every JSON client keeps exact: a file frozen for good
ACTIVE_TIMEOUT = 60.0
LOSS_DEADLINE = 1.0  # the promise: a removed member's socket is closed within a second
SESSION_ROWS = {"event": "*", "schema": "public", "table": "preview_sessions"}


def bearer_value(who: uuid.UUID | str) -> str:
    """A user's token for a user id, the service role's for ``"service"``, else ``who`` is a token already."""
    if isinstance(who, uuid.UUID):
        return token(who)
    return token(role="service_role") if who == "service" else who


@dataclass
class Tenants:
    ctx: Context
    http: httpx.AsyncClient
    a: uuid.UUID = field(default_factory=uuid.uuid4)
    b: uuid.UUID = field(default_factory=uuid.uuid4)
    project_b: str = field(default_factory=lambda: f"b-own-{uuid.uuid4().hex[:8]}")
    session: dict[str, Any] = field(default_factory=dict)  # A's session, as A's API shows it

    def url(self, who: uuid.UUID | str) -> str:
        return self.ctx.ws_url(bearer_value(who))

    async def call(self, who: uuid.UUID | str, method: str, path: str, body: Any = None) -> httpx.Response:
        """An API call as a user, ``"service"`` (the service role) or any raw bearer token."""
        value = bearer_value(who)
        return await self.http.request(method, self.ctx.api + path, json=body, headers=bearer(value))


# --- setup ----------------------------------------------------------------------------------------


async def start_a(t: Tenants, out: Outcome) -> None:
    created = await t.call(t.a, "POST", "/sessions/", {"project_id": PROJECT_A})
    created.raise_for_status()
    session, deadline = created.json(), time.monotonic() + ACTIVE_TIMEOUT
    while session["status"] == "creating" and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        session = (await t.call(t.a, "GET", f"/sessions/{session['id']}/")).json()
    if session["status"] != "active":
        raise RuntimeError(f"A's session is {session['status']}: {session.get('end_detail')}")
    await agent_joined(t.http, session, deadline)
    t.session = session
    out.step(f"user A's session {session['id']} for {PROJECT_A} is active with a real local agent")


async def agent_joined(http: httpx.AsyncClient, session: dict[str, Any], deadline: float) -> None:
    """Until A's agent has joined ``project:{id}`` (its ``/health`` says so): ``ready`` does not wait for the join,
    and this scripted editor does not resend what it sent before it (the official client resends on the
    ``agent:manifest`` the agent publishes when it joins)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            health = await http.get(f"{session['preview_url']}health", follow_redirects=True)
            if health.json().get("supabaseConnected"):
                return
        await asyncio.sleep(0.1)
    raise RuntimeError("A's agent did not join its project channel")


async def a_writes(t: Tenants, editor: Peer, join_ref: str, path: str, content: str, version: int) -> bool:
    since = len(editor.frames)
    payload = {"path": path, "content": content, "encoding": "utf-8", "version": version}
    await editor.send(broadcast_frame(f"project:{PROJECT_A}", "file:update", payload, join_ref=join_ref))
    return await editor.wait_for(synced(path, version), timeout=15, since=since) is not None


def a_file(t: Tenants, path: str) -> str | None:
    folder = Path(machine_env(t.ctx, t.session["id"])["PROJECT_DIR"])
    with contextlib.suppress(OSError):
        return (folder / path).read_text()
    return None


# --- 1 and 7: REST ---------------------------------------------------------------------------------


async def check_same_name(t: Tenants, out: Outcome) -> None:
    """B, honest, also calls their project my-app: refused, and nothing of B's is created for it."""
    response = await t.call(t.b, "POST", "/sessions/", {"project_id": PROJECT_A})
    out.check(
        response.status_code == 403 and error_code(response) == "project.forbidden",
        f"B creates a session for {PROJECT_A} (A's): 403 project.forbidden",
        f"B creates a session for A's project: {response.status_code} {error_code(response)}",
    )
    rows = (await t.call("service", "GET", f"/sessions/?project_id={PROJECT_A}")).json()["results"]
    owners = {row["user_id"] for row in rows}
    out.check(
        owners == {str(t.a)} and all(row["machine_id"] in (None, t.session["machine_id"]) for row in rows),
        f"service role sees only A's session and machine for {PROJECT_A}: no row or machine for B",
        f"sessions of {PROJECT_A} belong to {owners}; machines {[r['machine_id'] for r in rows]}",
    )
    mine = (await t.call(t.b, "GET", f"/sessions/?project_id={PROJECT_A}")).json()["results"]
    out.check(not mine, f"B's own list for {PROJECT_A} is empty", f"B lists {mine}")


async def check_rest(t: Tenants, out: Outcome) -> None:
    sid = t.session["id"]
    for method, path, body in (
        ("GET", f"/sessions/{sid}/", None),
        ("DELETE", f"/sessions/{sid}/", None),
        ("POST", f"/sessions/{sid}/heartbeat/", None),
        ("POST", f"/sessions/{sid}/extend/", {"minutes": 30}),  # B keeping A's preview (and A's bill) running
    ):
        response = await t.call(t.b, method, path, body)
        out.check(
            response.status_code == 404,
            f"B {method} {path.replace(sid, '<A>')}: 404",
            f"B {method} A's session: {response.status_code} {error_code(response)}",
        )
    projects = (await t.call(t.b, "GET", "/projects/")).json()
    listed = [p["project_id"] for p in projects.get("results", projects)]
    out.check(PROJECT_A not in listed, "B's projects list does not show A's project", f"B lists {listed}")
    a_project = await t.call(t.b, "GET", f"/projects/{PROJECT_A}/")
    unknown = await t.call(t.b, "GET", f"/projects/nobody-{uuid.uuid4().hex[:8]}/")
    out.check(
        a_project.status_code == 404 and a_project.json() == unknown.json(),
        "B GET /projects/<A's>/: 404, the very answer an unknown project gets",
        f"B GET A's project: {a_project.status_code} {a_project.text[:120]} (unknown: {unknown.text[:120]})",
    )
    await check_project_writes(t, out)


async def check_project_writes(t: Tenants, out: Outcome) -> None:
    attempts = (
        ("PUT", f"/projects/{PROJECT_A}/", {"owner_id": str(t.b)}),
        ("POST", f"/projects/{PROJECT_A}/members/", {"user_id": str(t.b), "role": "editor"}),
        ("DELETE", f"/projects/{PROJECT_A}/members/{t.b}/", None),
    )
    for method, path, body in attempts:
        response = await t.call(t.b, method, path, body)
        out.check(
            response.status_code == 403,
            f"B {method} {path}: 403 {error_code(response)}",
            f"B {method} {path}: {response.status_code} {error_code(response)}",
        )


# --- 2: joins --------------------------------------------------------------------------------------


async def check_joins(t: Tenants, out: Outcome, intruder: Peer) -> None:
    topic = f"project:{PROJECT_A}"
    _, private = await intruder.join(topic)
    ok, reason = refused(private)
    out.check(ok and reason.startswith("Unauthorized"), f"B joins {topic} private: '{reason}'", f"B joined: {private}")
    _, public = await intruder.join(topic, private=False)
    ok, reason = refused(public)
    out.check(ok and reason.startswith("PrivateOnly"), f"B joins {topic} public: '{reason}'", f"B joined: {public}")
    anon = anon_token(None)
    anon_peer = await Peer.open(t.ctx.ws_url(anon))
    try:
        _, with_anon = await anon_peer.join(topic)
        _, anon_joined = await intruder.join(topic, access_token=anon)
    finally:
        await anon_peer.close()
    for label, reply in (("as the socket's key", with_anon), ("as the join's access_token", anon_joined)):
        ok, reason = refused(reply)
        out.check(ok, f"B joins {topic} with the anon key {label}: '{reason}'", f"anon joined: {reply}")


async def check_status_channel(t: Tenants, out: Outcome, intruder: Peer, key: str) -> None:
    """A's own status channel ``user:{A}`` (issue 14): B, B publicly, and A's machine key are all refused."""
    topic = f"user:{t.a}"
    _, private = await intruder.join(topic)
    ok, reason = refused(private)
    out.check(ok and reason.startswith("Unauthorized"), f"B joins user:<A> private: '{reason}'", f"B joined: {private}")
    _, public = await intruder.join(topic, private=False)
    ok, reason = refused(public)
    out.check(ok and reason.startswith("PrivateOnly"), f"B joins user:<A> public: '{reason}'", f"B joined: {public}")
    key_peer = await Peer.open(t.ctx.ws_url(key))
    try:
        _, with_key = await key_peer.join(topic)
    finally:
        await key_peer.close()
    ok, reason = refused(with_key)
    out.check(
        ok, f"A's machine key joins user:<A>: '{reason}'", f"A's machine key joined A's status channel: {with_key}"
    )


# --- 3: writes -------------------------------------------------------------------------------------


def hostile_update(version: int) -> dict[str, Any]:
    return {"path": "index.html", "content": WRITTEN_BY_B, "encoding": "utf-8", "version": version}


async def b_writes_everywhere(t: Tenants, out: Outcome, intruder: Peer) -> None:
    """Every broadcast path B has: its own joined channel aimed at A's topic, REST batch and single form."""
    own_ref, _ = await intruder.join(f"project:{t.project_b}")
    for version in (2, HUGE_VERSION):
        for join_ref in (own_ref, "1"):  # the ref of B's own channel, and of the refused join
            frame = broadcast_frame(f"project:{PROJECT_A}", "file:update", hostile_update(version), join_ref=join_ref)
            await intruder.send(frame)
    statuses = [await rest_batch(t, private) for private in (True, False)]
    statuses += [await rest_single(t, private) for private in (True, False)]
    out.step(f"B sent file:update (versions 2 and 2**53-1) on every path; REST answered {statuses}")
    out.check(
        statuses[2:] == [403, 403],
        "B's single-form REST broadcasts to A's topic (with and without ?private=true): 403",
        f"B's single-form REST broadcasts answered {statuses[2:]}",
    )


async def rest_batch(t: Tenants, private: bool) -> int:
    messages = [
        {"topic": f"project:{PROJECT_A}", "event": "file:update", "payload": hostile_update(v), "private": private}
        for v in (3, HUGE_VERSION)
    ]
    url = f"{t.ctx.stack.base_url}/realtime/v1/api/broadcast"
    response = await t.http.post(url, json={"messages": messages}, headers=bearer(token(t.b)))
    return response.status_code


async def rest_single(t: Tenants, private: bool) -> int:
    url = f"{t.ctx.stack.base_url}/realtime/v1/api/broadcast/project:{PROJECT_A}/events/file:update"
    query = "?private=true" if private else ""
    response = await t.http.post(url + query, json=hostile_update(HUGE_VERSION), headers=bearer(token(t.b)))
    return response.status_code


async def check_writes(t: Tenants, out: Outcome, intruder: Peer, editor: Peer, editor_ref: str) -> None:
    since = len(editor.frames)
    await b_writes_everywhere(t, out, intruder)
    # A barrier: the agent handles its channel in order, so anything of B's that got through is on disk
    # (or refused) once A's next edit is acknowledged.
    barrier = await a_writes(t, editor, editor_ref, "barrier.txt", "after B's attempts", 1)
    out.check(barrier, "A's edit after B's attempts: file:synced", "A's edit after B's attempts was not acknowledged")
    heard = [broadcast_event(f) for f in editor.frames[since:]]
    leaked = [p for e, p in heard if e == "file:update" or p.get("version") in (2, 3, HUGE_VERSION)]
    out.check(not leaked, "A's channel carried none of B's updates", f"A's channel carried B's updates: {leaked}")
    on_disk = await asyncio.to_thread(a_file, t, "index.html")
    out.check(on_disk == PAGE_V1, "A's index.html on the agent's disk is unchanged", f"A's file is now {on_disk!r}")
    later = await a_writes(t, editor, editor_ref, "index.html", PAGE_V2, 2)
    out.check(later, "A's next edit (version 2) is acked: no version frozen by B", "A's version 2 was not acked")
    served = (await t.http.get(t.session["preview_url"].rstrip("/") + "/index.html")).text
    out.check(served == PAGE_V2, "A's preview serves A's version 2", f"A's preview serves {served[:80]!r}")


# --- 5 and 6: A's machine's credentials ------------------------------------------------------------


async def check_machine_key(t: Tenants, out: Outcome, env: dict[str, str]) -> tuple[Peer, str]:
    key, machine_token = env["REALTIME_KEY"], env["MACHINE_TOKEN"]
    listed = await t.call(key, "GET", "/sessions/")
    out.check(
        listed.status_code == 401 and error_code(listed) == "auth.bad_audience",
        "A's machine REALTIME_KEY as a REST bearer: 401 auth.bad_audience",
        f"REALTIME_KEY on REST: {listed.status_code} {error_code(listed)}",
    )
    await check_quota_bypass(t, out, {"REALTIME_KEY": key, "MACHINE_TOKEN": machine_token})
    peer = await Peer.open(t.ctx.ws_url(key))
    _, foreign = await peer.join(f"project:{t.project_b}")
    ok, reason = refused(foreign)
    out.check(ok, f"A's machine key joins B's project: '{reason}'", f"A's machine key joined B's project: {foreign}")
    ref, own = await peer.join(f"project:{PROJECT_A}")
    out.check(own.get("status") == "ok", "A's machine key joins A's project (control)", f"own join: {own}")
    return peer, ref


WARM_KEY_SCRIPT = (
    "from machines.services import machine_prepare; "
    "print(machine_prepare(session=None, memory_mb=512)[1].env['REALTIME_KEY'])"
)


async def check_warm_key(t: Tenants, out: Outcome) -> None:
    """The key a warm machine is started with, before any claim (its agent connects with it): it opens a socket
    and nothing else: no project channel (A's included), no REST broadcast, no REST API."""
    printed = await asyncio.to_thread(t.ctx.stack.manage, "shell", "-c", WARM_KEY_SCRIPT)
    key = printed.split()[-1]  # the last line: the key (log lines may come before it)
    peer = await Peer.open(t.ctx.ws_url(key))
    try:
        for topic in (f"project:{PROJECT_A}", f"project:{t.project_b}"):
            _, reply = await peer.join(topic)
            ok, reason = refused(reply)
            out.check(ok, f"a warm machine's key joins {topic}: '{reason}'", f"a warm key joined {topic}: {reply}")
    finally:
        await peer.close()
    url = f"{t.ctx.stack.base_url}/realtime/v1/api/broadcast/project:{PROJECT_A}/events/file:update?private=true"
    response = await t.http.post(url, json=hostile_update(HUGE_VERSION), headers=bearer(key))
    out.check(
        response.status_code == 403,
        "a warm machine's key broadcasts to A's topic over REST: 403",
        f"a warm key's REST broadcast to A's topic: {response.status_code}",
    )
    await check_quota_bypass(t, out, {"a warm machine's REALTIME_KEY": key})


async def check_agent_reports(t: Tenants, out: Outcome, env: dict[str, str]) -> None:
    """The agent API's door (heartbeats keep a session "alive" for the agent watch): only a machine's own token
    opens it, and it speaks for that machine's session whatever the body names."""
    beat = {"type": "heartbeat", "session_id": t.session["id"], "project_id": PROJECT_A, "supabaseConnected": True}
    for name, value in {"B's user token": token(t.b), "A's machine REALTIME_KEY": env["REALTIME_KEY"]}.items():
        response = await t.http.post(f"{t.ctx.api}/agent/events/", json=beat, headers=bearer(value))
        out.check(
            response.status_code == 401 and error_code(response) == "auth.machine_token",
            f"{name} sends a heartbeat for A's session: 401 auth.machine_token",
            f"{name} heartbeat for A's session: {response.status_code} {error_code(response)}",
        )


async def check_quota_bypass(t: Tenants, out: Outcome, issued: dict[str, str]) -> None:
    """Every token the orchestrator issued a machine, and an anon token with a subject: no session, no quota."""
    anon = anon_token(t.b)
    for name, value in {**issued, "anon token with B's sub": anon}.items():
        for method, path, body in (("POST", "/sessions/", {"project_id": t.project_b}), ("GET", "/quota/", None)):
            response = await t.call(value, method, path, body)
            expected = "auth.anonymous" if name.startswith("anon") else "auth."
            out.check(
                response.status_code == 401 and error_code(response).startswith(expected),
                f"{name}: {method} {path} 401 {error_code(response)}",
                f"{name}: {method} {path} {response.status_code} {error_code(response)}",
            )


# --- 8: losing access ------------------------------------------------------------------------------


async def check_losing_access(t: Tenants, out: Outcome) -> None:
    added = await t.call("service", "POST", f"/projects/{PROJECT_A}/members/", {"user_id": str(t.b), "role": "editor"})
    member = await Peer.open(t.url(t.b))
    try:
        ref, joined = await member.join(f"project:{PROJECT_A}")
        session = (await t.call(t.b, "POST", "/sessions/", {"project_id": PROJECT_A})).json()
        out.check(
            added.status_code == 200 and joined.get("status") == "ok" and session.get("status") == "creating",
            "A made B an editor: B joins and starts a session of my-app",
            f"membership: {added.status_code}, join {joined}, session {session}",
        )
        removed = await t.call("service", "DELETE", f"/projects/{PROJECT_A}/members/{t.b}/")
        closed = await member.wait_for(closed_with_system_error(f"project:{PROJECT_A}", ref), timeout=LOSS_DEADLINE)
        out.check(
            removed.status_code == 204 and closed is not None and had_system_error(member, f"project:{PROJECT_A}"),
            f"B removed: B's socket got the system error and phx_close within {LOSS_DEADLINE:.0f} s",
            f"B removed ({removed.status_code}): socket closed={closed is not None}, frames {member.frames[-3:]}",
        )
        after = (await t.call(t.b, "GET", f"/sessions/{session.get('id')}/")).json()
        out.check(after.get("status") == "ended", "B's live session of my-app is ended", f"B's session: {after}")
        _, again = await member.join(f"project:{PROJECT_A}")
        out.check(refused(again)[0], "B joins my-app again: refused", f"B rejoined after removal: {again}")
    finally:
        await member.close()


# --- 4 and 5: A's session ends ---------------------------------------------------------------------


async def end_a(t: Tenants, out: Outcome, key_peer: Peer, key_ref: str, key: str) -> None:
    ended = await t.call(t.a, "DELETE", f"/sessions/{t.session['id']}/")
    out.step(f"A ended the session ({ended.status_code}): the machine is destroyed")
    closed = await key_peer.wait_for(closed_with_system_error(f"project:{PROJECT_A}", key_ref), timeout=15)
    out.check(
        closed is not None and had_system_error(key_peer, f"project:{PROJECT_A}"),
        "the socket joined with A's machine key got the system error and phx_close",
        f"the machine key's channel stayed open: {key_peer.frames[-3:]}",
    )
    late = await Peer.open(t.ctx.ws_url(key))
    try:
        _, reply = await late.join(f"project:{PROJECT_A}")
    finally:
        await late.close()
    ok, reason = refused(reply)
    out.check(ok, f"A's machine key after the machine is gone: join refused '{reason}'", f"it joined: {reply}")


async def observe_rows(t: Tenants) -> tuple[Peer, Peer]:
    """B's own channel with B's bindings (one aimed at A's user id), and the service role as the control."""
    bindings = [SESSION_ROWS, {**SESSION_ROWS, "filter": f"user_id=eq.{t.a}"}]
    peers = (await Peer.open(t.url(t.b)), await Peer.open(t.url("service")))
    for peer in peers:
        _, reply = await peer.join(f"project:{t.project_b}", postgres_changes=bindings)
        if reply.get("status") != "ok":
            raise RuntimeError(f"the postgres_changes observer could not join: {reply}")
    return peers


async def check_rows(t: Tenants, out: Outcome, b_rows: Peer, control: Peer) -> None:
    sid = t.session["id"]
    ended = await control.wait_for(lambda f: '"ended"' in json.dumps(f) and sid in json.dumps(f), timeout=10)
    seen = [change for change, row in rows(control) if row.get("id") == sid]
    out.check(
        ended is not None and "INSERT" in seen,
        f"control: the service role received A's rows ({len(seen)} changes, through 'ended')",
        f"the service role did not see A's rows end: {seen}",
    )
    received = rows(b_rows)
    out.check(bool(received), f"B's subscription works: {len(received)} changes of B's own rows", "B got no row at all")
    # A DELETE's old_record is the key only (as on Supabase): A's rows are told apart by id there.
    foreign = [row for _, row in received if row.get("id") == sid or row.get("user_id", str(t.b)) != str(t.b)]
    out.check(not foreign, "B's postgres_changes received none of A's rows", f"B received others' rows: {foreign}")


def check_b_heard_nothing(t: Tenants, out: Outcome, peers: list[Peer]) -> None:
    text = "".join(peer.text() for peer in peers)
    leaked = [marker for marker in (PAGE_V1, PAGE_V2, "after B's attempts", t.session["id"]) if marker in text]
    out.check(not leaked, "none of B's sockets ever received A's files or session", f"B received {leaked}")


# --- webhooks: the operator's, never a tenant's ---------------------------------------------------


async def check_webhooks(t: Tenants, out: Outcome) -> None:
    """B tries every webhooks door with a user's token: to list the operator's endpoints, to register one of
    its own (to hear A's sessions end), to change, rotate or delete one, to read or redeliver deliveries."""
    disabled = {"url": "https://hooks.example.com/ops", "enabled": False}  # A's events go nowhere
    made = await t.call("service", "POST", "/webhooks/endpoints/", disabled)
    made.raise_for_status()
    endpoint = made.json()["id"]
    doors: list[tuple[str, str, dict[str, str] | None]] = [
        ("GET", "/webhooks/endpoints/", None),
        ("POST", "/webhooks/endpoints/", {"url": "https://b.example.com/steal"}),
        ("GET", f"/webhooks/endpoints/{endpoint}/", None),
        ("PATCH", f"/webhooks/endpoints/{endpoint}/", {"url": "https://b.example.com/steal"}),
        ("POST", f"/webhooks/endpoints/{endpoint}/rotate-secret/", None),
        ("DELETE", f"/webhooks/endpoints/{endpoint}/", None),
        ("GET", "/webhooks/deliveries/", None),
        ("POST", f"/webhooks/deliveries/{uuid.uuid4()}/redeliver/", None),
    ]
    for method, path, body in doors:
        response = await t.call(t.b, method, path, body)
        out.check(
            response.status_code == 403 and error_code(response) == "auth.forbidden",
            f"B {method} {path.replace(endpoint, '<endpoint>')}: 403 auth.forbidden",
            f"B {method} {path}: {response.status_code} {error_code(response)}",
        )
    after = (await t.call("service", "GET", f"/webhooks/endpoints/{endpoint}/")).json()
    listed = (await t.call("service", "GET", "/webhooks/endpoints/")).json()["results"]
    out.check(
        after.get("url") == "https://hooks.example.com/ops" and [e["url"] for e in listed] == [after.get("url")],
        "the operator's endpoint is unchanged and B registered none",
        f"endpoints after B's attempts: {[e['url'] for e in listed]}",
    )


# --- the play --------------------------------------------------------------------------------------


async def play(t: Tenants, out: Outcome) -> None:
    registered = await t.call("service", "PUT", f"/projects/{t.project_b}/", {"owner_id": str(t.b)})
    registered.raise_for_status()
    b_rows, control = await observe_rows(t)
    await start_a(t, out)
    editor, intruder = await Peer.open(t.url(t.a)), await Peer.open(t.url(t.b))
    key_peer: Peer | None = None
    try:
        editor_ref, _ = await editor.join(f"project:{PROJECT_A}")
        first = await a_writes(t, editor, editor_ref, "index.html", PAGE_V1, 1)
        out.check(first, "A's index.html (version 1) is acked and on disk", "A's first edit was not acknowledged")
        await check_same_name(t, out)
        await check_rest(t, out)
        await check_webhooks(t, out)
        await check_joins(t, out, intruder)
        await check_writes(t, out, intruder, editor, editor_ref)
        env = await asyncio.to_thread(machine_env, t.ctx, t.session["id"])
        key_peer, key_ref = await check_machine_key(t, out, env)
        await check_agent_reports(t, out, env)
        await check_warm_key(t, out)
        await check_status_channel(t, out, intruder, env["REALTIME_KEY"])
        check_b_heard_nothing(t, out, [intruder, b_rows])
        await check_losing_access(t, out)
        await end_a(t, out, key_peer, key_ref, env["REALTIME_KEY"])
        await check_rows(t, out, b_rows, control)
    finally:
        for peer in (editor, intruder, b_rows, control, key_peer):
            if peer is not None:
                await peer.close()


async def _run(ctx: Context, out: Outcome) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        await play(Tenants(ctx, http), out)


def run(ctx: Context, out: Outcome) -> None:
    ctx.stack.start_cluster()
    try:
        asyncio.run(_run(ctx, out))
    finally:
        ctx.stack.stop_cluster()
