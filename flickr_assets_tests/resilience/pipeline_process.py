"""Start, kill and wait for the pipeline runner (``runner.py``) as a separate process group."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "dagster_home" / "dagster.yaml"


def pipeline_env(base: dict[str, str], data_dir: Path, dagster_home: Path, **extra: str) -> dict[str, str]:
    """The runner's environment: ``base`` (FLICKR_* of the simulator) with its own data folder and instance."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML.read_text())
    env = {**os.environ, **base, "FLICKR_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(dagster_home), **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def start(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen:
    """The runner in a new session (its own process group, image workers included), output into ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "flickr_assets_tests.resilience.runner", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the runner's whole process group and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@dataclass
class Finished:
    returncode: int
    runs: list[dict]
    summary: dict | None
    output: str


def finish(process: subprocess.Popen, log: Path, timeout: float) -> Finished:
    """Wait at most ``timeout`` seconds (then kill: a hang is a failure) and parse the runner's report."""
    try:
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        raise AssertionError(f"the pipeline did not finish within {timeout:.0f} s (hang); log: {log}") from None
    output = log.read_text(errors="replace")
    runs = [json.loads(line[4:]) for line in output.splitlines() if line.startswith("RUN {")]
    summaries = [json.loads(line[8:]) for line in output.splitlines() if line.startswith("SUMMARY {")]
    return Finished(returncode, runs, summaries[-1] if summaries else None, output)


def run(env: dict[str, str], *args: str, log: Path, timeout: float) -> Finished:
    """Run the runner to its end (within ``timeout``)."""
    return finish(start(env, *args, log=log), log, timeout)
