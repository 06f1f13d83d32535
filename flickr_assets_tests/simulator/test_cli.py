"""``python -m flickr_assets.simulator``: serves the API from the command line and stops cleanly."""

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from flickr_assets.simulator import DEMO_API_KEY


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "flickr_assets.simulator", "--port", "0", "--cache-dir", str(tmp_path), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    found = re.search(r"on (http://127\.0\.0\.1:\d+)", first)
    assert found, first + process.stderr.read() if process.poll() is not None else first
    return process, found.group(1)


def test_cli_serves_searches_and_stops_on_sigterm(tmp_path: Path) -> None:
    process, base = _start(tmp_path, "--ties", "light", "--faults", "")
    try:
        params = {"method": "flickr.photos.search", "api_key": DEMO_API_KEY, "text": "colosseum"}
        params |= {"format": "json", "nojsoncallback": "1", "per_page": "500"}
        body = requests.get(f"{base}/services/rest/", params=params, timeout=30).json()
        assert body["stat"] == "ok" and int(body["photos"]["total"]) == 60
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and "stopped" in out


def test_cli_rejects_an_unknown_tie_profile(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flickr_assets.simulator", "--ties", "chaotic", "--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--ties" in result.stderr and "chaotic" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "--port 99999 is not a port: 0 to 65535"),
        (["--budget", "-5"], "--budget -5: give a number of calls per hour, or 0 for no limit"),
        (["--cache-dir", "/proc/no-such-folder"], "--cache-dir /proc/no-such-folder: cannot write there"),
    ],
)
def test_cli_refuses_bad_options_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    command = [sys.executable, "-m", "flickr_assets.simulator", "--cache-dir", str(tmp_path), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1], result.stderr
