"""text_generation clients for the gateway with streaming-friendly timeouts and safe retries.

Timeouts bound the connect and each silence between bytes, never the whole call: a stream may
legitimately run for minutes (the gateway's load balancer allows 300 s). Retries happen only
where a retry cannot run a generation twice: a connection that failed before the request was
sent, or a 503 whose Retry-After asks for one (an ingress mid-rollout). Nothing is retried
once the request was sent (a reset while waiting, a 5xx without Retry-After, a 429 meaning the
key's budget is spent) and never after a stream started: the error says so instead.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import requests
import urllib3.exceptions
from pydantic import ValidationError
from text_generation import AsyncClient, Client
from text_generation.errors import parse_error
from text_generation.types import Parameters, Request, Response, StreamResponse

from vocabulary.errors import LlmopsError


class GatewayUnavailable(LlmopsError):
    """The gateway could not be reached, or asked to come back later too many times."""


class StreamInterrupted(LlmopsError):
    """A stream broke after it started; not retried, since a retry would generate again."""


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 5.0
    #: longest silence between bytes: queueing plus the first token, then between tokens
    read_s: float = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3           # including the first
    backoff_s: float = 0.25     # after a failed connect, doubled each time
    max_wait_s: float = 10.0    # a longer Retry-After is not waited for

    def after_status(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait before retrying this answer, or None: only a 503 with Retry-After."""
        if status != 503 or "Retry-After" not in headers:
            return None
        wait = retry_after_seconds(headers["Retry-After"])
        return wait if wait is not None and wait <= self.max_wait_s else None

    def after_connect_failure(self, attempt: int) -> float:
        return self.backoff_s * 2 ** (attempt - 1)


DEFAULT_TIMEOUTS, DEFAULT_RETRY = Timeouts(), RetryPolicy()


def retry_after_seconds(value: str) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), or None if unreadable."""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parameters(stream: bool, stop_sequences: list[str] | None = None, **given: Any) -> Parameters:
    """TGI parameters as text_generation's own generate/generate_stream build them."""
    if stream:
        given.update(best_of=None, decoder_input_details=False)
    return Parameters(details=True, stop=stop_sequences or [], **given)


def error_payload(status: int, body: bytes | str) -> dict[str, Any]:
    """The gateway's JSON error, or a stand-in naming the status when a proxy answered."""
    try:
        payload = json.loads(body)
    except (ValueError, TypeError):
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        return payload
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    return {"error": f"HTTP {status} from the gateway: {text.strip()[:200] or 'no body'}"}


def _never_sent(exc: requests.ConnectionError) -> bool:
    """A connect failure (refused, unresolvable, connect timeout): nothing reached the server."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)


def _data(line: bytes | str) -> dict[str, Any] | None:
    text = line.decode() if isinstance(line, bytes) else line
    if not text.startswith("data:") or text.startswith("data: [DONE]"):
        return None
    return json.loads(text[len("data:"):].strip())


def _event(status: int, payload: dict[str, Any]) -> StreamResponse:
    try:
        return StreamResponse(**payload)
    except ValidationError:
        raise parse_error(status, payload) from None


class GatewayClient(Client):
    """text_generation's Client, through one HTTP session, with timeouts and safe retries."""

    def __init__(self, base_url: str, headers: dict[str, str], timeouts: Timeouts = DEFAULT_TIMEOUTS,
                 retry: RetryPolicy = DEFAULT_RETRY):
        super().__init__(base_url, headers=headers, timeout=int(timeouts.read_s))
        self.timeout = (timeouts.connect_s, timeouts.read_s)
        self.retry = retry
        self._session = requests.Session()

    def generate(self, prompt: str, **given: Any) -> Response:
        response = self._post(Request(inputs=prompt, stream=False,
                                      parameters=parameters(False, **given)), stream=False)
        if response.status_code != 200:
            raise parse_error(response.status_code, error_payload(response.status_code, response.content))
        return Response(**response.json()[0])

    def generate_stream(self, prompt: str, **given: Any) -> Iterator[StreamResponse]:
        response = self._post(Request(inputs=prompt, stream=True,
                                      parameters=parameters(True, **given)), stream=True)
        with response:
            if response.status_code != 200:
                raise parse_error(response.status_code,
                                  error_payload(response.status_code, response.content))
            events = 0
            try:
                for line in response.iter_lines():
                    if (payload := _data(line)) is not None:
                        yield _event(response.status_code, payload)
                        events += 1
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    requests.Timeout) as exc:
                raise StreamInterrupted(
                    f"the stream from {self.base_url} broke after {events} events ({exc}); "
                    "not retried: a retry would generate again") from None

    def _post(self, request: Request, stream: bool) -> requests.Response:
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                response = self._session.post(self.base_url, json=request.model_dump(),
                                              headers=self.headers, cookies=self.cookies,
                                              timeout=self.timeout, stream=stream)
            except requests.exceptions.SSLError as exc:
                raise GatewayUnavailable(f"TLS with {self.base_url} failed: {exc}") from None
            except requests.ReadTimeout:
                raise GatewayUnavailable(
                    f"{self.base_url} sent no answer within {self.timeout[1]} s; not retried: "
                    "the generation may have run") from None
            except requests.ConnectionError as exc:
                if not _never_sent(exc):
                    raise GatewayUnavailable(
                        f"the connection to {self.base_url} failed after the request was sent "
                        f"({exc}); not retried: the generation may have run") from None
                if last:
                    raise GatewayUnavailable(
                        f"could not connect to {self.base_url} ({attempt} attempts): {exc}") from None
                time.sleep(self.retry.after_connect_failure(attempt))
                continue
            wait = self.retry.after_status(response.status_code, response.headers)
            if wait is None or last:
                return response
            response.close()
            time.sleep(wait)
        raise AssertionError("unreachable")


class AsyncGatewayClient(AsyncClient):
    """text_generation's AsyncClient with per-read timeouts (no total) and safe retries."""

    def __init__(self, base_url: str, headers: dict[str, str], timeouts: Timeouts = DEFAULT_TIMEOUTS,
                 retry: RetryPolicy = DEFAULT_RETRY):
        super().__init__(base_url, headers=headers, timeout=int(timeouts.read_s))
        self.timeout = aiohttp.ClientTimeout(total=None, connect=timeouts.connect_s,
                                             sock_read=timeouts.read_s)
        self.retry = retry

    async def generate(self, prompt: str, **given: Any) -> Response:
        request = Request(inputs=prompt, stream=False, parameters=parameters(False, **given))
        async with (aiohttp.ClientSession(headers=self.headers, cookies=self.cookies,
                                          timeout=self.timeout) as session,
                    await self._post(session, request) as response):
            if response.status != 200:
                raise parse_error(response.status, error_payload(response.status, await response.read()))
            return Response(**(await response.json())[0])

    async def generate_stream(self, prompt: str, **given: Any) -> AsyncIterator[StreamResponse]:
        request = Request(inputs=prompt, stream=True, parameters=parameters(True, **given))
        async with (aiohttp.ClientSession(headers=self.headers, cookies=self.cookies,
                                          timeout=self.timeout) as session,
                    await self._post(session, request) as response):
            if response.status != 200:
                raise parse_error(response.status, error_payload(response.status, await response.read()))
            events = 0
            try:
                async for line in response.content:
                    if (payload := _data(line)) is not None:
                        yield _event(response.status, payload)
                        events += 1
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                    aiohttp.ClientOSError, TimeoutError) as exc:
                raise StreamInterrupted(
                    f"the stream from {self.base_url} broke after {events} events "
                    f"({exc!r}); not retried: a retry would generate again") from None

    async def _post(self, session: aiohttp.ClientSession, request: Request) -> aiohttp.ClientResponse:
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                response = await session.post(self.base_url, json=request.model_dump())
            except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
                raise GatewayUnavailable(f"TLS with {self.base_url} failed: {exc}") from None
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                if last:
                    raise GatewayUnavailable(
                        f"could not connect to {self.base_url} ({attempt} attempts): {exc}") from None
                await asyncio.sleep(self.retry.after_connect_failure(attempt))
                continue
            except aiohttp.ClientError as exc:
                raise GatewayUnavailable(
                    f"the connection to {self.base_url} failed after the request was sent "
                    f"({exc!r}); not retried: the generation may have run") from None
            wait = self.retry.after_status(response.status, response.headers)
            if wait is None or last:
                return response
            response.release()
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")
