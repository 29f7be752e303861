"""Authentication: `User`, `AuthError`, authenticators (`JWTAuth`, `APIKeyAuth`) and token lookup."""

from hubbub.auth.api_key import APIKeyAuth
from hubbub.auth.jwt_auth import JWTAuth
from hubbub.auth.user import Authenticator, AuthError, User, token_from_request

__all__ = ["APIKeyAuth", "AuthError", "Authenticator", "JWTAuth", "User", "token_from_request"]
