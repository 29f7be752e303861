"""`JWTAuth`: an authenticator that verifies JSON Web Tokens (PyJWT).

The token comes from `Authorization: Bearer`, the `token` query parameter, or a
`bearer.<token>` entry in the offered subprotocols (`token_from_request`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from hubbub.auth.user import CLOSE_INVALID_TOKEN, CLOSE_MISSING_TOKEN, AuthError, User, token_from_request
from hubbub.errors import ConfigurationError
from hubbub.web.request import Request

INVALID_TOKEN_REASONS: Final = {
    "ExpiredSignatureError": "token expired",
    "ImmatureSignatureError": "invalid token: not yet valid",
    "InvalidAudienceError": "invalid token: wrong audience",
    "InvalidIssuerError": "invalid token: wrong issuer",
    "InvalidIssuedAtError": "invalid token: bad iat",
    "InvalidAlgorithmError": "invalid token: algorithm not allowed",
    "InvalidSignatureError": "invalid token: bad signature",
    "DecodeError": "invalid token: malformed",
}
"""The close reason (and refresh error message) of each way a JWT can fail; stable and
documented in docs/protocol.md. A missing required claim is "invalid token: missing claim 'NAME'";
anything else is "invalid token"."""


def invalid_token_reason(exc: Exception) -> str:
    """The stable, documented reason for a PyJWT error (never PyJWT's own text)."""
    import jwt

    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"invalid token: missing claim {exc.claim!r}"
    for kind in type(exc).__mro__:
        reason = INVALID_TOKEN_REASONS.get(kind.__name__)
        if reason is not None:
            return reason
    return "invalid token"


class JWTAuth:
    """Verify JSON Web Tokens (HS256 with `secret`, RS256 with `public_key`).

    Checks signature, `exp`, `nbf`, and `aud`/`iss` when given. The user id is the
    `user_claim` claim (default "sub"); the `info_claims` (default "name") become
    `User.info`, shown to other clients; all claims are in `User.claims`.

    `require` names claims a token must carry (besides `user_claim`). The default,
    `("exp",)`, refuses tokens that never expire, so that no connection (and no
    `hubbub.refresh`) can become permanent; pass `require=()` to accept them.
    """

    def __init__(
        self,
        *,
        secret: str | bytes | None = None,
        public_key: str | bytes | None = None,
        algorithms: Iterable[str] | None = None,
        audience: str | Iterable[str] | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
        user_claim: str = "sub",
        info_claims: Iterable[str] = ("name",),
        require: Iterable[str] = ("exp",),
    ) -> None:
        if (secret is None) == (public_key is None):
            raise ConfigurationError("JWTAuth needs exactly one of secret (HS256) or public_key (RS256)")
        self._key = secret if secret is not None else public_key
        self.algorithms = list(algorithms or (["HS256"] if secret is not None else ["RS256"]))
        self.audience = audience if audience is None or isinstance(audience, str) else list(audience)
        self.issuer = issuer
        self.leeway = leeway
        self.user_claim = user_claim
        self.info_claims = tuple(info_claims)
        self.require = [user_claim, *(name for name in require if name != user_claim)]

    def verify_token(self, token: str) -> User:
        """The user a token names; raises AuthError(4002) if it is invalid or expired."""
        import jwt

        try:
            claims = jwt.decode(
                token,
                self._key,  # type: ignore[arg-type]
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": self.require},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(CLOSE_INVALID_TOKEN, invalid_token_reason(exc)) from None
        user_id = claims.get(self.user_claim)
        if not isinstance(user_id, str | int) or user_id == "":
            raise AuthError(CLOSE_INVALID_TOKEN, f"invalid token: claim {self.user_claim!r} is not an id")
        exp = claims.get("exp")
        info = {name: claims[name] for name in self.info_claims if name in claims}
        return User(str(user_id), info, float(exp) if isinstance(exp, int | float) else None, claims)

    def __call__(self, request: Request) -> User:
        token = token_from_request(request)
        if token is None:
            raise AuthError(CLOSE_MISSING_TOKEN, "missing token")
        return self.verify_token(token)
