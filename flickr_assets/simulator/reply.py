"""One HTTP answer of the simulator, as the REST endpoint and the static host decide it and the handler writes it."""

from dataclasses import dataclass

HTML = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    """Status, body and the few headers the simulator sends; ``drop`` closes the connection without answering."""

    status: int = 200
    body: bytes = b""
    content_type: str = HTML
    retry_after: int | None = None
    location: str | None = None
    truncate_to: int | None = None  # send only this many body bytes, then close the connection
    drop: bool = False


DROP = Reply(drop=True)
NOT_FOUND = Reply(404, b"<html><body><h1>404 Not Found</h1></body></html>\n")
