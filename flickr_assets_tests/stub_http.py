"""Small HTTP servers on 127.0.0.1 for what the simulator cannot play (bodies cut short, trickled, bombs)."""

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 answering with ``handler``; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def trickle(handler: http.server.BaseHTTPRequestHandler, body: bytes, pause: float) -> None:
    """Send ``body`` a byte at a time, ``pause`` seconds apart (no single wait reaches a client's timeout);
    stop quietly when the client gives up."""
    try:
        for byte in body:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(pause)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True
