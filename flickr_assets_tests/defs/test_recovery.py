"""Which runs' processes ``recover_dead_runs`` takes for gone: real processes, real /proc."""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from flickr_assets.defs.recovery import (
    HOST_TAG,
    _process_alive,
    judge_place,
    process_place,
    process_start_time,
    recover_dead_runs,
)
from flickr_assets.defs.resources import RECOVERY_INTERVAL_S
from flickr_assets.simulator import Faults

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def sleeper():
    before = time.time()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process, before
    process.kill()
    process.wait()


def test_start_time_is_when_the_process_started(sleeper: tuple[subprocess.Popen, float]) -> None:
    # Not the ctime of /proc/<pid>: the kernel rebuilds that entry when it evicts it (on this machine, pid 3's
    # says 6,677 s after boot although it started at boot), and a live run would then be taken for dead.
    process, before = sleeper
    time.sleep(1.5)
    started = process_start_time(process.pid)
    assert started is not None
    assert before - 1.0 <= started <= before + 1.0  # boot time has whole seconds


def test_a_run_process_alive_for_a_while_is_alive(sleeper: tuple[subprocess.Popen, float]) -> None:
    recorded = time.time()  # a run's start time is recorded after its process starts
    time.sleep(1.5)
    assert _process_alive(sleeper[0].pid, recorded)


def test_a_process_newer_than_the_run_is_not_its_process(sleeper: tuple[subprocess.Popen, float]) -> None:
    run_started = time.time() - 30  # the pid now belongs to a process started after the run
    assert not _process_alive(sleeper[0].pid, run_started)


def test_a_reaped_process_is_gone() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert not _process_alive(process.pid, time.time())
    assert process_start_time(process.pid) is None


def test_start_time_of_this_process() -> None:
    started = process_start_time(os.getpid())
    assert started is not None and 0 < time.time() - started < 3600


def _started_run(instance: dg.DagsterInstance, process: subprocess.Popen, timeout: float = 120) -> dg.DagsterRun:
    """The run of ``process`` once it is STARTED, tagged with its place and holding its ``flickr_api`` slot."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else "the run ended early"
        runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        if (
            runs
            and HOST_TAG in runs[0].tags
            and instance.event_log_storage.get_concurrency_info("flickr_api").claimed_slots
        ):
            return runs[0]
        time.sleep(0.2)
    raise AssertionError("the run never started")


def _harvest_args(keyword: str) -> list[str]:
    return [str(BIN / "dagster"), "asset", "materialize", "-m", "flickr_assets.definitions",
            "--select", "photo_records", "--partition", keyword]  # fmt: skip


@pytest.fixture
def harvest_run(pipeline_env, sim, tmp_path, monkeypatch):
    """A real CLI run of photo_records, slowed down so it holds its ``flickr_api`` slot: (instance, process,
    run) once it has started. Its keyword, "new york", takes hundreds of calls."""
    keywords = tmp_path / "keywords.txt"
    keywords.write_text("new york\ncolosseum\n")
    monkeypatch.setenv("FLICKR_KEYWORDS_FILE", str(keywords))
    sim.faults = Faults(slow=1.0, slow_seconds=1.0)  # every call is slow
    args = _harvest_args("new york")
    with dg.DagsterInstance.get() as instance:
        process = subprocess.Popen(args, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            yield instance, process, _started_run(instance, process)
        finally:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_killed_run_is_failed_and_its_slot_freed_a_live_one_is_left(harvest_run) -> None:
    instance, process, run = harvest_run
    assert run.tags[HOST_TAG] == process_place()
    assert recover_dead_runs(instance) == []  # alive: left alone, however long it has been running

    process.kill()
    process.wait()
    assert recover_dead_runs(instance) == [run.run_id]
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info("flickr_api").claimed_slots


@pytest.mark.slow
def test_a_run_of_another_host_is_not_judged_here(harvest_run) -> None:
    instance, process, run = harvest_run
    process.kill()
    process.wait()
    # As if it had run in a container of its own: its pid says nothing here.
    host, machine, boot, _ = process_place().split("|")
    instance.add_run_tags(run.run_id, {HOST_TAG: f"{host}|{machine}|{boot}|pid:[1]"})
    assert recover_dead_runs(instance) == []
    # This machine before a reboot: gone for sure.
    instance.add_run_tags(run.run_id, {HOST_TAG: f"{host}|{machine}|another-boot|pid:[1]"})
    assert recover_dead_runs(instance) == [run.run_id]


def test_places_are_judged() -> None:
    here = "vm|m-1|boot-1|pid:[4026531836]"
    assert judge_place(here, here) == "pid"
    assert judge_place("vm|m-1|boot-0|pid:[4026531836]", here) == "gone"  # this machine, rebooted since
    assert judge_place("vm|m-1|boot-1|pid:[4026532001]", here) == "elsewhere"  # a container on this machine
    assert judge_place("vm|m-2|boot-0|pid:[4026531836]", here) == "elsewhere"  # another machine of the same name
    assert judge_place("worker-7|m-1|boot-1|pid:[4026531836]", here) == "elsewhere"
    assert judge_place(None, here) == "elsewhere"
    assert judge_place("vm|?|boot-0|pid:[1]", "vm|?|boot-1|pid:[1]") == "elsewhere"  # no machine id to compare


@pytest.mark.slow
def test_a_run_waiting_for_the_slot_of_a_run_killed_meanwhile_goes_on(harvest_run) -> None:
    instance, process, run = harvest_run
    waiting = subprocess.Popen(
        _harvest_args("colosseum"), env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while len(instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))) < 2:
            assert time.monotonic() < deadline and waiting.poll() is None, "the second run never started"
            time.sleep(0.2)
        time.sleep(2)  # it has met the held slot by now
        assert waiting.poll() is None
        process.kill()  # the holder dies after the waiting run's own check at its start
        process.wait()
        killed = time.monotonic()
        output, _ = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, output[-3000:]
        assert time.monotonic() - killed < RECOVERY_INTERVAL_S + 30  # freed by the waiting run's repeated check
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    finally:
        waiting.kill()
        waiting.wait()
