"""Drives ``dagster dev`` and its web UI in headless Chromium for the UI test.

``DagsterDev`` starts the server in its own process group and stops it without leaving processes behind;
``graphql`` reads the instance's state; ``open_browser`` and ``DagsterUi`` work the pages the way a person
does (buttons, dialogs, tabs), and ``Evidence`` keeps the screenshots and the server log for failures.
"""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

CHROMIUM = Path("/usr/bin/chromium")
# No first-run UI, no background traffic to Google: the browser only talks to 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(base_url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST a GraphQL query to the webserver; returns ``data`` or raises with the errors."""
    response = requests.post(f"{base_url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


RUNS_QUERY = """
query Runs {
  runsOrError {
    __typename
    ... on Runs { results { runId status tags { key value } assetSelection { path } } }
    ... on PythonError { message }
  }
}
"""

LOCATIONS_QUERY = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""


def list_runs(base_url: str) -> list[dict[str, Any]]:
    """Every run of the instance: id, status, tags as a dict and the selected asset keys."""
    result = graphql(base_url, RUNS_QUERY)["runsOrError"]
    if result["__typename"] != "Runs":
        raise RuntimeError(f"runsOrError: {result}")
    return [
        {
            "run_id": run["runId"],
            "status": run["status"],
            "tags": {tag["key"]: tag["value"] for tag in run["tags"]},
            "assets": ["/".join(key["path"]) for key in run["assetSelection"] or []],
        }
        for run in result["results"]
    ]


def wait_for_run(base_url: str, run_id: str, timeout: float) -> str:
    """Polls the run until it ends (or ``timeout`` seconds pass); returns its last status."""
    deadline = time.monotonic() + timeout
    status = "UNKNOWN"
    while time.monotonic() < deadline:
        status = next((run["status"] for run in list_runs(base_url) if run["run_id"] == run_id), "UNKNOWN")
        if status in TERMINAL_RUN_STATUSES:
            return status
        time.sleep(1.0)
    return status


PARTITIONS_QUERY = """
query Partitions($path: [String!]!) { assetNodes(assetKeys: [{path: $path}]) { partitionKeys } }
"""


def wait_for_partition(base_url: str, asset: str, key: str, timeout: float) -> float:
    """Polls the webserver until ``asset`` has the partition ``key``; returns the seconds waited."""
    started = time.monotonic()
    keys: list[str] = []
    while time.monotonic() < started + timeout:
        try:
            nodes = graphql(base_url, PARTITIONS_QUERY, {"path": [asset]})["assetNodes"]
        except (requests.RequestException, RuntimeError):  # the code location may be reloading right now
            nodes = []
        keys = nodes[0]["partitionKeys"] if nodes else keys
        if key in keys:
            return time.monotonic() - started
        time.sleep(1.0)
    raise TimeoutError(f"{asset} has no partition {key!r} after {timeout:.0f} s; its partitions: {keys}")


class DagsterDev:
    """``dagster dev -w workspace.yaml`` on 127.0.0.1 in its own process group, output to ``log_path``."""

    def __init__(self, repo: Path, env: dict[str, str], log_path: Path, dagster: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._repo = repo
        self._env = env
        self._dagster = dagster
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> float:
        """Starts the server and waits until it answers and the code location is LOADED; returns seconds."""
        started = time.monotonic()
        cmd = [str(self._dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)]
        with self.log_path.open("wb") as log:
            # A new session, so that the whole group can be killed at the end; and default SIGINT/SIGTERM
            # handling, since a shell without job control (`pytest &` in a script) passes them on ignored and
            # dagster dev would then ignore the SIGINT that stops it (dagster-notes 9).
            self._process = subprocess.Popen(
                cmd,
                cwd=self._repo,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_default_stop_signals,
            )
        deadline = started + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                requests.get(f"{self.base_url}/server_info", timeout=5).raise_for_status()
                entries = graphql(self.base_url, LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
                last = str(entries)
                if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                    errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                    if errors:
                        raise RuntimeError(f"code location failed to load: {errors}")
                    return time.monotonic() - started
            except (requests.RequestException, KeyError, TypeError) as error:
                last = repr(error)
            time.sleep(0.5)
        raise TimeoutError(f"dagster dev not ready after {timeout:.0f} s ({last}):\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> tuple[float, bool]:
        """SIGINT, wait up to ``timeout``, then SIGKILL whatever is left of the process group.

        Returns (seconds to stop, whether the group had to be killed)."""
        if self._process is None:
            return 0.0, False
        started = time.monotonic()
        killed = False
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                killed = True
        # Children (code server, run workers) may outlive the parent for up to a minute (heartbeat timeout);
        # they share its process group: give them a moment, then end the group.
        grace = time.monotonic() + 5
        while not killed and _group_alive(self._process.pid) and time.monotonic() < grace:
            time.sleep(0.2)
        if _group_alive(self._process.pid):
            killed = True
            _kill_group(self._process.pid)
        self._process.wait(10)
        return time.monotonic() - started, killed

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's output."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"


def _default_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)


def processes_with_env(name: str, value: str) -> list[int]:
    """PIDs of this user's processes whose environment has ``name=value`` (to find orphans)."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (PermissionError, FileNotFoundError, ProcessLookupError):
            continue
    return found


class Evidence:
    """Numbered screenshots of each step, plus the server log, for assert messages and the README."""

    def __init__(self, folder: Path, server: DagsterDev) -> None:
        self.folder = folder
        self.server = server
        self.shots: list[Path] = []

    def shot(self, page: Any, name: str, **options: Any) -> Path:
        """Saves a screenshot of ``page`` (or of a locator) as ``NN-name.png``."""
        path = self.folder / f"{len(self.shots) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), **options)
        self.shots.append(path)
        return path

    def describe(self) -> str:
        """Where the screenshots and the log are, for a failure message."""
        shots = "\n".join(f"  {path}" for path in self.shots) or "  (none)"
        return f"screenshots:\n{shots}\ndagster dev log: {self.server.log_path}\n{self.server.log_tail(2500)}"

    @contextmanager
    def step(self, page: Any, what: str) -> Iterator[None]:
        """Turns any failure inside into an AssertionError naming the step, after a screenshot of the page."""
        try:
            yield
        except Exception as error:
            try:
                self.shot(page, "failed")
            except Exception as shot_error:  # the page may be gone; the message matters more
                self.shots.append(Path(f"(no failure screenshot: {shot_error})"))
            raise AssertionError(f"UI step failed: {what}: {error}\n{self.describe()}") from error


@contextmanager
def open_browser(playwright: Any, viewport: tuple[int, int] = (1400, 900), scale: float = 1) -> Iterator[Any]:
    """A page in Debian's headless Chromium with a fresh profile, closed afterwards (``scale``: pixels per
    CSS pixel of the screenshots)."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": viewport[0], "height": viewport[1]},
            device_scale_factor=scale,
        )
        try:
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            context.close()


class DagsterUi:
    """The pages of the Dagster UI used by the test, worked through their buttons and dialogs."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        # A fresh instance greets the first visitor with a newsletter dialog that covers the page: skip it
        # whenever it shows up, before any other action.
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"),
            lambda: page.get_by_role("button", name="Skip").click(),
        )

    def open(self, path: str) -> None:
        """Opens a page of the UI and waits until its network calls settle."""
        self.page.goto(f"{self.base_url}{path}")
        self.page.wait_for_load_state("networkidle")

    def asset_graph(self, group: str, assets: list[str]) -> None:
        """Opens the group's lineage graph and waits until every asset's node is drawn."""
        self.open(f"/asset-groups/{group}")
        for asset in assets:
            self.page.locator("svg, div").get_by_text(asset, exact=True).last.wait_for()
        self.page.get_by_text("Loading...").first.wait_for(state="hidden")

    def materialize_partition(self, asset: str, partition: str, on_toast: Callable[[], object] | None = None) -> str:
        """Asset page → Materialize… → pick ``partition`` in the partition dialog → Launch 1 run → View on the
        "Launched run …" toast (``on_toast`` is called while it shows). Returns the short run ID the toast
        named; the page is then the run's page."""
        page = self.page
        self.open(f"/assets/{asset}")
        page.get_by_role("button", name="Materialize…").click()
        dialog = page.get_by_role("dialog").filter(has_text=f"Launch runs to materialize {asset}")
        dialog.get_by_text("Select a partition or create one").click()
        page.get_by_role("menuitem").filter(has_text=partition).first.click()
        page.keyboard.press("Escape")  # closes the partition list, not the dialog
        dialog.get_by_text("1 partition", exact=True).wait_for()
        dialog.get_by_role("button", name="Launch 1 run").click()
        dialog.wait_for(state="hidden", timeout=60_000)
        # The toast goes away after a few seconds unless the pointer rests on it.
        launched = re.compile(r"Launched run ([0-9a-f]{8})")
        view = page.get_by_role("button", name="View", exact=True).or_(page.get_by_role("link", name="View"))
        toast = page.locator("div").filter(has_text=launched).filter(has=view).last
        toast.hover()
        short_id = launched.search(toast.inner_text()).group(1)
        if on_toast:
            on_toast()
        toast.locator(view).first.click()
        page.wait_for_url(re.compile(rf"/runs/{short_id}[0-9a-f-]{{28}}"))
        return short_id

    def graph_clip(self, assets: list[str], margin: int = 40) -> dict[str, float]:
        """The part of the graph page around the nodes of ``assets`` (for a readable README picture)."""
        page = self.page
        boxes = [
            page.locator("div").filter(has=page.get_by_text(asset, exact=True)).filter(has_text="Latest event").last
            for asset in assets
        ]
        boxes = [node.bounding_box() for node in boxes]
        left = max(min(box["x"] for box in boxes) - margin, 0)
        top = max(min(box["y"] for box in boxes) - margin, 0)
        right = max(box["x"] + box["width"] for box in boxes) + margin // 2  # the zoom buttons are close
        bottom = max(box["y"] + box["height"] for box in boxes) + margin  # the kind tags sit under the nodes
        return {"x": left, "y": top, "width": right - left, "height": bottom - top}

    def partition_list(self, asset: str, partition: str) -> None:
        """Asset page → Partitions tab; waits until ``partition`` is listed."""
        page = self.page
        self.open(f"/assets/{asset}")
        page.get_by_role("tab", name="Partitions").or_(page.get_by_role("link", name="Partitions")).first.click()
        page.get_by_text(partition, exact=True).first.wait_for()

    def partition_metadata(self, asset: str, partition: str, key: str) -> dict[str, str]:
        """Asset page → Partitions tab → the partition; waits for the metadata entry ``key`` and returns the
        latest materialisation's metadata table (entry → value as shown)."""
        page = self.page
        self.partition_list(asset, partition)
        page.get_by_text(partition, exact=True).first.click()
        rows = page.get_by_role("row").filter(has=page.get_by_role("cell"))
        rows.filter(has=page.get_by_role("cell", name=key, exact=True)).first.wait_for()
        table: dict[str, str] = {}
        for row in rows.all():
            cells = [cell.inner_text().strip() for cell in row.get_by_role("cell").all()]
            if len(cells) >= 2 and cells[0]:
                table[cells[0]] = cells[1]
        return table
