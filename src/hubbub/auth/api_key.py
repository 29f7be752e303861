"""API-key authentication: a fixed set of keys, each naming the user (or service) it stands for."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from hubbub.auth.user import CLOSE_INVALID_TOKEN, CLOSE_MISSING_TOKEN, AuthError, User
from hubbub.errors import ConfigurationError
from hubbub.web.request import Request


class APIKeyAuth:
    """An authenticator that accepts the keys it was given, read from the `header` header
    (`x-api-key` by default). `keys` maps each key to its user id, or lists keys whose user
    id is `"api"`. Works for HTTP routes (`auth=APIKeyAuth(...)`) and WebSocket routes alike.

    >>> auth = APIKeyAuth({"k-backend-1": "billing"})
    """

    def __init__(self, keys: Mapping[str, str] | Iterable[str], *, header: str = "x-api-key") -> None:
        pairs = dict(keys) if isinstance(keys, Mapping) else dict.fromkeys(keys, "api")
        if not pairs or any(not key for key in pairs):
            raise ConfigurationError("APIKeyAuth needs at least one non-empty key")
        self._keys = [(key.encode("utf-8"), user_id) for key, user_id in pairs.items()]
        self.header = header.lower()

    def __call__(self, request: Request) -> User:
        given = request.headers.get(self.header)
        if not given:
            raise AuthError(CLOSE_MISSING_TOKEN, f"missing {self.header} header")
        offered = given.encode("utf-8")
        found: str | None = None
        for key, user_id in self._keys:  # compare with every key, in constant time each
            if hmac.compare_digest(key, offered):
                found = user_id
        if found is None:
            raise AuthError(CLOSE_INVALID_TOKEN, "invalid API key")
        return User(found)
