"""Reading an HTTP body in bounded time and size, for the API client and the image download alike.

urllib3's and requests' timeouts bound each wait for bytes, not the whole body: a server sending a byte every
few seconds would hold a request forever. :func:`read_body` also wants the bytes at a minimum average rate
once the first ``grace`` seconds have passed, and stops past ``max_bytes``.
"""

import time

import urllib3

CHUNK = 256 * 1024
#: Slowest average rate accepted after the grace period: a trickle is refused, a slow link is not.
MIN_BYTES_PER_S = 20_000


class BodyError(Exception):
    """The body came too slowly or was too large; the message says which, in a few words."""


class BodyTooLarge(BodyError):
    """The body grew past its cap (the same again on the next try)."""


def read_body(response: urllib3.BaseHTTPResponse, grace: float, max_bytes: int, decode: bool = False) -> bytes:
    """The body of ``response`` (made with ``preload_content=False``), decoded (gzip...) if ``decode``. Raises
    :class:`BodyError` when it grows past ``max_bytes``, or when after ``grace`` seconds the bytes came slower
    than :data:`MIN_BYTES_PER_S` on average; the connection is then closed, never returned to its pool."""
    started = time.monotonic()
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := response.read1(CHUNK, decode_content=decode):
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge(f"body larger than {max_bytes:,} bytes")
            chunks.append(chunk)
            elapsed = time.monotonic() - started
            if elapsed > grace and size < MIN_BYTES_PER_S * (elapsed - grace):
                raise BodyError(f"body too slow: {size:,} bytes in {elapsed:.0f} s")
    except BodyError:
        response.close()
        raise
    finally:
        response.release_conn()
    return b"".join(chunks)
