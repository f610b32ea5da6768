"""Replica affinity on the prompt text, for a track whose router hashes a session header.

A TGI model serves no render API, so vllm-router 0.1.17's `cache_aware` has no token ids to key
on and places its requests by load alone (docs/routing.md, "TGI models"). Its `consistent_hash`
policy instead hashes the first non-empty header of `x-session-id`, `x-user-id`, ... onto a ring
of 160 virtual nodes per worker, headers before any body field (`session_params.session_id`,
`user`, `session_id`, `user_id`) and before a hash of the whole body (vllm-router 0.1.17 sdist,
`src/policies/hash_key.rs` `extract_hash_key`, `src/policies/consistent_hash.rs`). The gateway
sets `x-session-id` to a hash of the prompt's leading text, so requests that start alike land on
one replica, whose prefix cache then holds that start.

The key is the leading messages up to and including the first user message (the system
prompt(s) and the question that opens the chat), cut at PREFIX_CHARS: every later turn of a chat
repeats exactly those messages, so all its turns keep one key and one replica, while later
messages (which change every turn) never enter it. A system prompt longer than PREFIX_CHARS keys
alone: every chat sharing it goes to one replica (the most cache reuse, and the hot-prompt risk,
see docs/routing.md). A completions prompt keys on its first PREFIX_CHARS characters.

The header is always set, so a client cannot choose the replica: the gateway never forwards a
client's headers (only JSON_HEADERS go upstream), and the router reads this header before any
`session_id` or `user` field a client puts in the body.
"""

from __future__ import annotations

import hashlib
from typing import Any

#: vllm-router 0.1.17's first session header (`SESSION_HEADER_NAMES`, src/policies/hash_key.rs)
SESSION_HEADER = "x-session-id"
#: how much leading text keys a request: about 1,000 tokens, more than most system prompts plus
#: an opening question, so distinct chats spread over the replicas; longer ones key on the start
PREFIX_CHARS = 4096
PROMPT_PREFIX = "prompt-prefix"


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list (request.py checked it)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def leading_text(route: str, body: dict[str, Any]) -> str:
    """The start of the prompt that every turn of one conversation repeats."""
    messages = body.get("messages")
    if isinstance(messages, list):
        parts: list[str] = []
        for message in messages:
            if not isinstance(message, dict):
                break
            parts.append(f"<{message.get('role')}>{_text(message.get('content'))}")
            if message.get("role") == "user" or sum(map(len, parts)) >= PREFIX_CHARS:
                break
        return "".join(parts)[:PREFIX_CHARS]
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt = prompt[0] if prompt and isinstance(prompt[0], str) else ""
    return prompt[:PREFIX_CHARS] if isinstance(prompt, str) else ""


def affinity_key(route: str, body: dict[str, Any]) -> str:
    """A stable, non-empty key for the prompt's leading text (hex SHA-256, 32 characters)."""
    text = f"{route}\n{leading_text(route, body)}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
