"""Talking to the gateway in raw bytes: what a careless or hostile client sends."""

from __future__ import annotations

import socket
import struct
import time


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def read_answer(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """The final HTTP answer (status, lower-cased headers, body), past any interim `1xx`;
    (0, {}, b"") if the connection closed without one."""
    sock.settimeout(timeout)
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            chunk = _recv(sock)
            if not chunk:
                return 0, {}, b""
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        if not head.split(b" ", 2)[1].startswith(b"1"):
            break
        data = body  # an interim answer has no body: the final one follows
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "-1"))
    while length < 0 or len(body) < length:
        chunk = _recv(sock)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (ConnectionResetError, TimeoutError):
        return b""


def exchange(url: str, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(address(url), timeout=timeout) as sock:
        sock.sendall(request)
        return read_answer(sock, timeout)


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a client that dies does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def send_and_leave(url: str, data: bytes, pause: float = 0.2, rst: bool = True) -> None:
    with socket.create_connection(address(url), timeout=5) as sock:
        sock.sendall(data)
        time.sleep(pause)
        if rst:
            reset(sock)


def post(path: str, body: bytes, headers: dict[str, str] | list[tuple[str, str]] | None = None,
         *, length: int | None = None, extra: bytes = b"") -> bytes:
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    head = f"POST {path} HTTP/1.1\r\nHost: gateway\r\n".encode()
    for name, value in items:
        head += f"{name}: {value}\r\n".encode()
    head += extra
    head += f"Content-Length: {len(body) if length is None else length}\r\n\r\n".encode()
    return head + body
