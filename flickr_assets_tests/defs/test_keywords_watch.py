"""keywords_file_watch: compares the keywords file with the loaded partitions, and says why it did nothing.

That it makes a running ``dagster dev`` show a new keyword is tested for real in ``test_ui.py``.
"""

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest

from flickr_assets.definitions import defs
from flickr_assets.defs.keywords_watch import describe_change, keywords_file_watch, last_reload, shown
from flickr_assets.defs.partitions import keyword_partitions
from flickr_assets_tests.defs.ui_driver import free_port


def _evaluate() -> str:
    result = keywords_file_watch(dg.build_sensor_context())
    assert isinstance(result, dg.SkipReason), result
    return result.skip_message


@pytest.fixture
def keywords_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A keywords file holding exactly the loaded partitions, in use as ``$FLICKR_KEYWORDS_FILE``."""
    path = tmp_path / "keywords.txt"
    path.write_text("\n".join(keyword_partitions.get_partition_keys()) + "\n", encoding="utf-8")
    monkeypatch.setenv("FLICKR_KEYWORDS_FILE", str(path))
    return path


def test_the_watch_is_part_of_the_definitions_and_on_by_default():
    assert defs.get_sensor_def("keywords_file_watch").default_status == dg.DefaultSensorStatus.RUNNING


def test_an_unchanged_file_needs_nothing(keywords_file):
    message = _evaluate()
    assert message == f"the partitions match {keywords_file} ({len(keyword_partitions.get_partition_keys())} keywords)"


def test_comments_and_options_are_not_changes(keywords_file):
    loaded = keyword_partitions.get_partition_keys()
    keywords_file.write_text(f"# my keywords\n{loaded[0]} | tags\n" + "\n".join(loaded[1:]) + "\n", encoding="utf-8")
    assert _evaluate().startswith("the partitions match")


def test_lines_that_cannot_be_partitions_are_named_in_the_tick(keywords_file):
    with keywords_file.open("a", encoding="utf-8") as file:
        file.write("...\n")
    line = len(keyword_partitions.get_partition_keys()) + 1
    message = _evaluate()
    assert message.startswith("the partitions match"), message
    assert f"; 1 line skipped: {keywords_file} line {line}: keyword consists only of dots" in message, message


def test_a_change_without_a_webserver_says_what_changed_and_what_to_do(keywords_file, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("FLICKR_WEBSERVER_URL", url)
    with keywords_file.open("a", encoding="utf-8") as file:
        file.write("eiffel tower\n")
    message = _evaluate()
    assert f"{keywords_file} changed (+'eiffel tower')" in message
    assert f"no Dagster webserver answered at {url} (ConnectionError)" in message
    assert "FLICKR_WEBSERVER_URL" in message and "Reload definitions" in message


def test_a_removed_keyword_is_a_change_too(keywords_file, monkeypatch):
    monkeypatch.setenv("FLICKR_WEBSERVER_URL", f"http://127.0.0.1:{free_port()}")
    first, *rest = keyword_partitions.get_partition_keys()
    keywords_file.write_text("\n".join(rest) + "\n", encoding="utf-8")
    assert f"{keywords_file} changed (-{first!r})" in _evaluate()


ACCEPTED = {
    "data": {
        "reloadRepositoryLocation": {
            "__typename": "WorkspaceLocationEntry",
            "locationOrLoadError": {"__typename": "RepositoryLocation"},
        }
    }
}


class _StubWebserver(BaseHTTPRequestHandler):
    """Answers like a Dagster webserver whose reload mutation is accepted (without replacing this process, as a
    standalone daemon's code server is not) or refused (403, e.g. a proxy in front of it)."""

    accept: ClassVar[bool] = False
    reloads: ClassVar[list[str]] = []  # each test's fixture gives its own subclass fresh lists
    authorizations: ClassVar[list[str | None]] = []
    partitions: ClassVar[list[str] | None] = None  # what the webserver's UI shows (None: as this process)
    url: ClassVar[str] = ""

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._json(200, {"dagster_webserver_version": "1.13.27"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.authorizations.append(self.headers.get("Authorization"))
        if "assetNodes" in body:  # the partitions the UI shows
            shown = keyword_partitions.get_partition_keys() if self.partitions is None else self.partitions
            self._json(200, {"data": {"assetNodes": [{"partitionKeys": shown}]}})
            return
        self.reloads.append(body)
        if self.accept:
            self._json(200, ACCEPTED)
        else:
            self.send_error(403, "not allowed to reload")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webserver() -> Iterator[type[_StubWebserver]]:
    """A stub webserver on 127.0.0.1 (its handler class: ``accept``, ``reloads``, ``url``)."""
    handler = type("Stub", (_StubWebserver,), {"reloads": [], "authorizations": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler
    server.shutdown()
    server.server_close()
    last_reload.keywords, last_reload.asked_at, last_reload.failure = (), 0.0, None


def _wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition()


def test_a_refused_reload_is_reported_by_the_next_tick(keywords_file, monkeypatch, webserver):
    monkeypatch.setenv("FLICKR_WEBSERVER_URL", webserver.url)
    with keywords_file.open("a", encoding="utf-8") as file:
        file.write("eiffel tower\n")
    first = _evaluate()
    assert first.endswith(f"asked {webserver.url} to reload code location 'flickr_assets'"), first
    _wait_for(lambda: last_reload.failure is not None)
    assert "403" in last_reload.failure
    second = _evaluate()
    assert "again (the last reload failed: " in second and "403" in second, second
    _wait_for(lambda: len(webserver.reloads) == 2)


def test_an_accepted_reload_is_not_asked_again_while_the_daemon_catches_up(keywords_file, monkeypatch, webserver):
    webserver.accept = True
    monkeypatch.setenv("FLICKR_WEBSERVER_URL", webserver.url)
    with keywords_file.open("a", encoding="utf-8") as file:
        file.write("eiffel tower\n")
    assert "asked" in _evaluate()
    _wait_for(lambda: len(webserver.reloads) == 1)
    assert "reloadRepositoryLocation" in webserver.reloads[0] and "flickr_assets" in webserver.reloads[0]
    waiting = _evaluate()
    assert waiting.endswith("waiting for it") and "changed (+'eiffel tower')" in waiting, waiting
    with keywords_file.open("a", encoding="utf-8") as file:  # another change is another reload
        file.write("mount fuji\n")
    assert "asked" in _evaluate()
    _wait_for(lambda: len(webserver.reloads) == 2)


def test_a_webserver_still_showing_old_partitions_is_asked_to_reload(keywords_file, monkeypatch, webserver):
    # A standalone daemon reloaded this process, which now matches the file; the webserver was never told.
    webserver.accept = True
    first, *rest = keyword_partitions.get_partition_keys()
    webserver.partitions = rest
    monkeypatch.setenv("FLICKR_WEBSERVER_URL", webserver.url)
    message = _evaluate()
    assert f"{keywords_file} changed (+{first!r})" in message and message.endswith("'flickr_assets'"), message
    _wait_for(lambda: len(webserver.reloads) == 1)
    webserver.partitions = None  # reloaded: the UI shows the file's keywords
    assert _evaluate().startswith("the partitions match")


def test_a_password_in_the_webserver_url_is_sent_but_never_shown(keywords_file, monkeypatch, webserver):
    webserver.accept = True
    url = webserver.url.replace("http://", "http://admin:s3cr%40t@")
    monkeypatch.setenv("FLICKR_WEBSERVER_URL", url)
    with keywords_file.open("a", encoding="utf-8") as file:
        file.write("eiffel tower\n")
    message = _evaluate()
    assert "s3cr" not in message and webserver.url.replace("http://", "http://admin:***@") in message, message
    _wait_for(lambda: len(webserver.reloads) == 1)
    assert set(webserver.authorizations) == {"Basic " + base64.b64encode(b"admin:s3cr@t").decode()}


def test_shown_hides_only_the_password():
    assert shown("https://admin:pw@dagster.example:8443/prefix") == "https://admin:***@dagster.example:8443/prefix"
    assert shown("http://127.0.0.1:3000") == "http://127.0.0.1:3000"


def test_an_unreadable_file_keeps_the_loaded_keywords(keywords_file):
    keywords_file.write_bytes(b"\xff\xfe colosseum\n")
    message = _evaluate()
    assert message.startswith(f"keeping the {len(keyword_partitions.get_partition_keys())} loaded keywords: ")
    assert str(keywords_file) in message and "not UTF-8" in message


def test_a_missing_file_keeps_the_loaded_keywords(keywords_file):
    keywords_file.unlink()
    assert _evaluate().startswith("keeping the ")


def test_describe_change_names_added_and_removed_keywords():
    assert describe_change(["a", "b"], ["a", "b", "c d"]) == "+'c d'"
    assert describe_change(["a", "b"], ["b"]) == "-'a'"
    assert describe_change(["a", "b"], ["c", "a"]) == "+'c', -'b'"
    assert describe_change(["a", "b"], ["b", "a"]) == "order changed"
    many = describe_change(["a"], ["a", *(f"k{i}" for i in range(1000))])
    assert many == "+'k0', +'k1', +'k2', +'k3', +'k4', 995 more"
