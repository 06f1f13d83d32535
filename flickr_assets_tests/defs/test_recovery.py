"""Which runs' processes ``recover_dead_runs`` takes for gone: real processes, real /proc."""

import os
import subprocess
import sys
import time

import pytest

from flickr_assets.defs.recovery import _process_alive, process_start_time

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
