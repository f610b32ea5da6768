"""API keys: stored as SHA-256, compared in constant time, each allowed a set of models."""

from __future__ import annotations

import hashlib
import hmac

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
        digest = hash_key(secret.strip())
        for known, key in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return key
        return None

    @staticmethod
    def allows(key: ApiKey, model: str) -> bool:
        return "*" in key.models or model in key.models
