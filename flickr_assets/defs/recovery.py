"""Clean up after runs whose process was killed (SIGKILL, OOM, power loss).

A killed run stays ``STARTED`` in the instance and keeps the pool slot its step held (``flickr_api`` /
``flickr_static`` allow one each), so every later run of that pool waits for it forever. Dagster's run
monitoring daemon only watches runs it launched itself; in-process runs (the demo, scripts, the CLI) need
this: before starting work, mark each run whose process is gone as failed and free its slots.

A process number means something only where it was given: each run tags itself with its host (name and
machine id), boot and PID namespace (``HOST_TAG``) before any step takes a slot, and only runs tagged like
the current process are judged by their pid; a run from an earlier boot of this machine is gone for sure;
other machines' and containers' runs are left to their own.
"""

import logging
import os
import socket
from functools import cache
from pathlib import Path

import dagster as dg

log = logging.getLogger("flickr_assets")

_LIVE_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]

#: The run tag holding where the run's process lives: ``host name|machine id|boot id|pid namespace``.
HOST_TAG = "flickr_assets/process"


@cache
def process_place() -> str:
    """Where this process's pid means something: host name, machine id, boot id and PID namespace
    (``HOST_TAG``'s value; ``?`` for what this system does not tell)."""

    def read(path: str, link: bool = False) -> str:
        try:
            return os.readlink(path) if link else Path(path).read_text().strip() or "?"
        except OSError:
            return "?"

    machine, boot = read("/etc/machine-id"), read("/proc/sys/kernel/random/boot_id")
    return f"{socket.gethostname()}|{machine}|{boot}|{read('/proc/self/ns/pid', link=True)}"


def tag_run_place(instance: dg.DagsterInstance, run_id: str) -> None:
    """Record where run ``run_id``'s process lives (``HOST_TAG``), so later runs can judge whether it is gone."""
    instance.add_run_tags(run_id, {HOST_TAG: process_place()})


def judge_place(tagged: str | None, here: str) -> str:
    """How a run tagged ``tagged`` is judged from a process at ``here``: ``"pid"`` (same machine, boot and PID
    namespace: its pid tells), ``"gone"`` (this machine rebooted since) or ``"elsewhere"`` (not ours to judge;
    also an untagged run, killed before it set up, which holds no slot)."""
    if tagged is None:
        return "elsewhere"
    if tagged == here:
        return "pid"
    host, machine, boot, *_ = [*tagged.split("|"), "", ""]
    here_host, here_machine, here_boot, *_ = here.split("|")
    same_machine = (host, machine) == (here_host, here_machine) and "?" not in (machine, boot, here_boot)
    return "gone" if same_machine and boot != here_boot else "elsewhere"


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event is not None else None


def _process_alive(pid: int, since: float) -> bool:
    """True when ``pid`` exists and was started no later than ``since`` (a newer process reuses the number)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = process_start_time(pid)
    if started is None:
        return True  # no /proc: trust the signal check
    return started <= since + 1.0  # boot time is whole seconds


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started (unix time), from ``/proc``: its start in clock ticks after boot plus the boot time.
    (The ctime of ``/proc/<pid>`` is not it: that is when the kernel first built the entry.) None without
    ``/proc`` or once the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        return int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark runs whose process no longer exists as failed and free their pool slots; return their IDs."""
    recovered = []
    here = process_place()
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=_LIVE_STATUSES)):
        run = record.dagster_run
        judged = judge_place(run.tags.get(HOST_TAG), here)
        if judged == "elsewhere":
            continue
        pid = _run_pid(instance, run.run_id)
        started = record.start_time or record.create_timestamp.timestamp()
        if judged == "pid" and (pid is None or _process_alive(pid, started)):
            continue
        why = "is gone (killed?)" if judged == "pid" else "ended with an earlier boot of this host"
        message = f"the process of run {run.run_id} (pid {pid}) {why}: marked failed, pool slots freed"
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        log.warning(message)
        recovered.append(run.run_id)
    return recovered
