"""Token refusals in Supabase Realtime's own words, and the realtime endpoint's token rule.

One refused token is told three ways, as supabase/realtime tells it:

- at the handshake, an HTTP status with ``{"error": text}`` (``lib/realtime_web/channels/user_socket.ex``,
  ``handle_error``): 401 for every token problem, ``Token has expired`` without the age;
- as a join's reason, ``Code: text`` (``realtime_channel.ex``, ``join/3``), e.g.
  ``InvalidJWTToken: Token has expired 12 seconds ago``;
- as the ``system`` message that ends a channel on a refused ``access_token`` or at the token's expiry
  (``realtime_channel.ex``, ``handle_in("access_token")`` and ``handle_info(:confirm_token)``): the text
  alone, and for a bad signature the server's ``inspect`` of its error atom, ``:signature_error``.

The endpoint refuses more than Realtime does (a role it does not know, a subject that is not a UUID, an
audience or issuer that is not the project's): those keep the code ``InvalidJWTToken`` and this
service's own text, since Realtime has none. Pure functions: the clock is a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from velocity.auth import Claims, TokenError, realtime_audiences, verify_token

INVALID_JWT = "InvalidJWTToken"
NOT_A_JWT = "The token provided is not a valid JWT"
BAD_SIGNATURE = "Failed to validate JWT signature"
MISSING_CLAIMS = "Fields `role` and `exp` are required in JWT"
SIGNER = "Failed to generate JWT signer, check your JWT secret or JWKS configuration"


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # Realtime's error code, the join reason's prefix
    text: str  # what a join reason and a system message say
    handshake: str  # what the handshake's JSON body says
    system: str | None = None  # a system message's text when it differs from ``text``

    @property
    def join_reason(self) -> str:
        return f"{self.code}: {self.text}"

    @property
    def system_text(self) -> str:
        return self.system or self.text


def expired_text(exp: int, now: float) -> str:
    """Realtime's age of an expired token, in whole seconds (``channels_authorization.ex``)."""
    return f"Token has expired {int(now) - exp} seconds ago"


def is_expired(exp: int, now: float) -> bool:
    """Realtime takes a token while ``exp > now`` in whole seconds, with no leeway."""
    return exp <= int(now)


def realtime_claims(token: str, now: float) -> Claims:
    """The claims of a token the realtime endpoint accepts; it takes no leeway past ``exp``, as Realtime."""
    claims = verify_token(token, audiences=realtime_audiences())
    if is_expired(claims.exp, now):
        raise TokenError("auth.expired", "the token has expired")
    return claims


def _signer(token: str) -> str:
    kid = _header(token).get("kid")
    if not isinstance(kid, str):
        return SIGNER
    quoted = kid.replace("\\", "\\\\").replace('"', '\\"')
    return f'Failed to generate JWT signer for key ID (kid) "{quoted}", check your JWT secret or JWKS configuration'


def _header(token: str) -> dict[str, object]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.DecodeError:
        return {}


def _exp(token: str) -> int | None:
    """The ``exp`` of a token whose signature already verified (only its age is told from it)."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.DecodeError:
        return None
    return int(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def refusal(exc: TokenError, token: str, now: float) -> Refusal:
    """How Realtime words the refusal of ``token`` (``exc`` is why ``verify_token`` refused it)."""
    if exc.code == "auth.expired":
        exp = _exp(token)
        text = expired_text(exp, now) if exp is not None else "Token has expired"
        return Refusal(INVALID_JWT, text, "Token has expired")
    if exc.code in ("auth.missing", "auth.malformed"):
        handshake = "API key is missing" if exc.code == "auth.missing" else NOT_A_JWT
        return Refusal("MalformedJWT", NOT_A_JWT, handshake)
    if exc.code == "auth.bad_signature":
        return Refusal("JwtSignatureError", BAD_SIGNATURE, BAD_SIGNATURE, system=":signature_error")
    if exc.code == "auth.missing_claim":
        return Refusal(INVALID_JWT, MISSING_CLAIMS, MISSING_CLAIMS)
    if exc.code in ("auth.unsupported_algorithm", "auth.unknown_key", "auth.wrong_algorithm"):
        text = _signer(token)
        return Refusal("JwtSignerError", text, text)
    text = exc.message[:1].upper() + exc.message[1:]
    return Refusal(INVALID_JWT, text, text)


def handshake_body(exc: TokenError, token: str, now: float) -> tuple[int, dict[str, str]]:
    """The refused handshake's status and JSON body."""
    return 401, {"error": refusal(exc, token, now).handshake}
