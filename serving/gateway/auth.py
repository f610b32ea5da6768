"""API keys: stored as SHA-256 and looked up by the digest of the presented key; each key
is allowed a set of models."""

from __future__ import annotations

import hashlib

from serving.gateway.config import ApiKey


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, keys: list[ApiKey]):
        self._by_hash = {k.sha256: k for k in keys}

    def authenticate(self, authorization: str | None) -> ApiKey | None:
        """The key for an `Authorization: Bearer <key>` header (scheme in any case), or None."""
        scheme, _, secret = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return None
        # a dict lookup on the SHA-256 of the presented key: timing can only reveal things
        # about that digest, never about a stored key, and it stays O(1) however many keys
        try:
            digest = hash_key(secret.strip())
        except UnicodeEncodeError:  # aiohttp decodes header bytes that are not UTF-8 with
            return None             # surrogateescape (helpers.py); no stored key has them
        return self._by_hash.get(digest)

    @staticmethod
    def allows(key: ApiKey, model: str) -> bool:
        return "*" in key.models or model in key.models
