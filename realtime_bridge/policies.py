"""Who may read or write a channel: policies registered by the apps that own the topics.

The endpoint knows no app's models. An app registers a policy for a topic prefix (``sessions`` registers
``project:``); the endpoint asks it at join (``read``), at the first broadcast or presence track of a
channel (``write``, then cached until the token changes), on a token refresh, and whenever the owner
announces that access to a topic changed (``events.reauthorize_on_commit``). The service role may use
every topic; a topic no policy claims is refused to everyone else, except as a public channel.

Public channels (``private: false``) are Supabase's: on a project that allows public access anyone with
the project's key, the anon key included, may join one and broadcast or track presence on it, with no
policy asked. The endpoint allows them (``REALTIME_PUBLIC_CHANNELS``, on by default as on Supabase) on
topics no policy claims only: a claimed topic (``project:``, ``user:``) is private only, so a public
channel never shares a name, a message or a presence with one, and its ``postgres_changes`` rows are
still filtered by the subscriber's own token (``tables.row_visible``). Policies run in a worker thread
and may query the database; they must answer False, not raise, when they cannot decide.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from velocity.auth import Claims

READ = "read"
WRITE = "write"

Policy = Callable[[Claims, str, str], bool]
_policies: dict[str, Policy] = {}


def register(prefix: str, policy: Policy) -> None:
    """``policy(claims, rest_of_topic, action)`` decides for every topic that starts with ``prefix``."""
    _policies[prefix] = policy


def private_only(topic: str) -> bool:
    """Topics that refuse public joins, as a Supabase project with "Allow public access" switched off."""
    return any(topic.startswith(prefix) for prefix in _policies)


def public_refused(topic: str) -> bool:
    """Is a public join of ``topic`` refused (a claimed topic, or public channels switched off)?"""
    return private_only(topic) or not settings.REALTIME_PUBLIC_CHANNELS


def public_open(topic: str, *, private: bool) -> bool:
    """A public channel on an unclaimed topic: open to every valid token, for reading and writing."""
    return not private and not public_refused(topic)


def authorize(claims: Claims, topic: str, action: str) -> bool:
    """May ``claims`` do ``action`` (``read`` or ``write``) on ``topic`` (without ``realtime:``)?"""
    if claims.is_service_role:
        return True
    for prefix, policy in _policies.items():
        if topic.startswith(prefix):
            rest = topic.removeprefix(prefix)
            return bool(rest) and policy(claims, rest, action)
    return False


# --- what the bridge mirrors from a Supabase project ------------------------------------------

_mirrored: list[Callable[[], set[str]]] = []


def register_mirrored_topics(source: Callable[[], set[str]]) -> None:
    """``source()`` answers which topics (``project:{id}``) the bridge should follow now: the owner of the
    topics knows which are live."""
    _mirrored[:] = [source]


def mirrored_topics() -> set[str]:
    return _mirrored[0]() if _mirrored else set()
