"""The typed contract of an app's channel routes: an AsyncAPI 3 document (`asyncapi`) and
TypeScript declarations for hubbub.js (`typescript`), both written by `hubbub schema`."""

from hubbub.contract.asyncapi import asyncapi_document
from hubbub.contract.typescript import typescript_declarations

__all__ = ["asyncapi_document", "typescript_declarations"]
