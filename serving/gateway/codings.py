"""The request content codings the gateway decodes itself: gzip and deflate, nothing else.

aiohttp's server decoding is off (`auto_decompress=False` in server.py) so that every coding
reaches the gateway's own code: aiohttp 3.14.5 refuses `br` and `zstd` while parsing the headers
when their libraries are missing (http_parser.py `DeflateBuffer.__init__` raises
ContentEncodingError from the C parser's `_on_headers_complete`), which answered the client with
aiohttp's plain-text 400 before any key was checked or any audit line written. Here the gateway
refuses them like any other coding it does not take (415, RFC 9110 15.5.16), and decodes the two
it does within the body limit (a small body cannot expand past `maxBodyBytes`).
"""

from __future__ import annotations

import zlib

#: What a `Content-Encoding` may say; anything else is a 415.
DECODED = frozenset({"gzip", "deflate", "identity"})
#: gzip members in one body at most (RFC 1952 allows several; aiohttp's own cap,
#: compression_utils.py MAX_DECOMPRESS_MEMBERS).
MAX_MEMBERS = 1024


class NotDecodable(ValueError):
    """The body is not what its Content-Encoding says."""


class TooLarge(ValueError):
    """The decoded body is larger than the limit."""


def decode(raw: bytes, coding: str, limit: int) -> bytes:
    """`raw` decoded from `coding` (gzip or deflate; identity as it is), at most `limit` bytes.

    deflate is the zlib format (RFC 9110 8.4.1.2); a raw deflate stream without the zlib header
    is taken too, as aiohttp does (http_parser.py `DeflateBuffer.feed_data`)."""
    if coding == "identity" or not raw:
        return raw
    if coding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    else:
        wbits = zlib.MAX_WBITS if raw[0] & 0x0F == 8 else -zlib.MAX_WBITS
    parts: list[bytes] = []
    size, members, rest = 0, 0, raw
    while rest:
        members += 1
        if members > MAX_MEMBERS or (members > 1 and coding != "gzip"):
            raise NotDecodable(f"more than one {coding} stream" if coding != "gzip"
                               else f"more than {MAX_MEMBERS} gzip members")
        decoder = zlib.decompressobj(wbits)
        try:
            part = decoder.decompress(rest, limit + 1 - size)  # size <= limit: never 0 (unbounded)
        except zlib.error as exc:
            raise NotDecodable(str(exc)) from None
        size += len(part)
        if size > limit or decoder.unconsumed_tail:
            raise TooLarge
        if not decoder.eof:
            raise NotDecodable("the stream is cut short")
        parts.append(part)
        rest = decoder.unused_data
    return b"".join(parts)
