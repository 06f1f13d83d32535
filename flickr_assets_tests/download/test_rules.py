"""Pure answer-classification rules, per-host manners and option checks."""

import multiprocessing
import os
import signal
import threading
import time
from typing import Any

import pytest

from flickr_assets.download.classify import (
    describe_body,
    is_missing_status,
    is_original_url,
    is_placeholder_url,
    is_retryable_status,
)
from flickr_assets.download.limits import HostLimiter, SharedLimits
from flickr_assets.download.options import DownloadOptions, DownloadProgress
from flickr_assets.download.workers import StopFlag
from flickr_assets.imaging.decode import sniff_format


def test_placeholder_and_original_urls():
    assert is_placeholder_url("https://s.yimg.com/pw/images/en-us/photo_unavailable_l.png")
    assert is_placeholder_url("/pw/images/fr-fr/Photo_Unavailable.png")
    assert not is_placeholder_url("https://live.staticflickr.com/65535/1_abc_b.jpg")
    assert is_original_url("https://live.staticflickr.com/65535/1_abc_o.png")
    assert not is_original_url("https://live.staticflickr.com/65535/1_abc_b.jpg")
    assert not is_original_url("https://live.staticflickr.com/65535/1_o_b.jpg")


def test_body_sniffing():
    assert sniff_format(b"\xff\xd8\xff\xe0rest") == "JPEG"
    assert sniff_format(b"\x89PNG\r\n\x1a\nrest") == "PNG"
    assert sniff_format(b"GIF89a...") == "GIF"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WebP"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None  # a sound, not an image
    assert sniff_format(b"<!DOCTYPE html><html>") is None
    assert describe_body(b"  <html><body>busy</body></html>", "text/html") == "HTML body (text/html, 32 bytes)"
    assert describe_body(b"", None) == "non-image body (no content type, 0 bytes)"


def test_status_rules():
    assert all(is_retryable_status(s) for s in (408, 429, 500, 502, 503, 504))
    assert not any(is_retryable_status(s) for s in (200, 403, 404, 410))
    assert is_missing_status(404) and is_missing_status(410) and not is_missing_status(403)


def _through_gate(limiter: HostLimiter, url: str, threads: int, hold: float) -> tuple[int, list[float]]:
    active, peak, starts, lock = [0], [0], [], threading.Lock()

    def one() -> None:
        with limiter.slot(url):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                starts.append(time.monotonic())
            time.sleep(hold)
            with lock:
                active[0] -= 1

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return peak[0], sorted(starts)


def test_per_host_concurrency_caps():
    limiter = HostLimiter(per_host=3, per_host_original=1, original_interval=0.0)
    peak, _ = _through_gate(limiter, "http://127.0.0.1:9/1/2_a_b.jpg", threads=10, hold=0.03)
    assert peak == 3
    peak, _ = _through_gate(limiter, "http://127.0.0.1:9/1/2_a_o.jpg", threads=4, hold=0.02)
    assert peak == 1


def test_originals_are_spaced_and_a_429_pauses_the_host_for_everyone():
    limiter = HostLimiter(per_host=4, per_host_original=4, original_interval=0.05)
    began = time.monotonic()
    _, starts = _through_gate(limiter, "http://127.0.0.1:9/1/2_a_o.jpg", threads=5, hold=0.0)
    assert max(starts) - began >= 4 * 0.05  # five starts need four full intervals, however threads are scheduled
    large = "http://127.0.0.1:9/1/2_a_b.jpg"
    limiter.pause(large, 0.3)
    began = time.monotonic()
    _, starts = _through_gate(limiter, large, threads=3, hold=0.0)
    assert min(starts) - began >= 0.28
    began = time.monotonic()  # another host is not held back
    _through_gate(limiter, "http://localhost:9/1/2_a_b.jpg", threads=2, hold=0.0)
    assert time.monotonic() - began < 0.2


def test_a_bare_429_on_an_original_widens_the_spacing_of_originals_which_then_narrows():
    original, large = "http://127.0.0.1:9/1/2_a_o.jpg", "http://127.0.0.1:9/1/2_a_b.jpg"
    limiter = HostLimiter(per_host=4, per_host_original=2, original_interval=0.0)
    limiter.throttled(large, 0.0)  # Larges are paused, never spaced
    assert limiter.extra_spacing(large) == 0.0
    steps = []
    for _ in range(6):
        limiter.throttled(original, 0.0)
        steps.append(limiter.extra_spacing(original))
    assert steps == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]

    limiter = HostLimiter(per_host=4, per_host_original=2, original_interval=0.0)
    limiter.throttled(original, 0.0)
    _, starts = _through_gate(limiter, original, threads=3, hold=0.0)
    assert starts[2] - starts[0] >= 0.5 + 0.5 * 0.97 - 0.01  # each start waits the spacing, a little less each time
    assert limiter.extra_spacing(original) == pytest.approx(0.5 * 0.97**3)


def test_bad_options_say_which():
    with pytest.raises(ValueError) as bad:
        DownloadOptions(quality=0, files_per_shard=5000)
    assert str(bad.value) == (
        "bad download options: quality=0 (must be from 1 to 100), files_per_shard=5000 (must be from 1 to 1000)"
    )
    with pytest.raises(ValueError, match=r"min_side=2000 \(must be from 0 to max_side \(1024\)\)"):
        DownloadOptions(min_side=2000)


def test_progress_line():
    progress = DownloadProgress("stonehenge", done=50, total=150, elapsed_s=10.0, counts={"ok": 45, "too_small": 5})
    assert progress.images_per_s == 5.0 and progress.eta_s == 20.0
    assert str(progress) == "stonehenge: 50/150 (33%) 5.0 images/s ETA 0:00:20 [ok=45 too_small=5]"


def _hold_shared_slot(limits: SharedLimits, url: str, hold: float, active: Any, peak: Any) -> None:
    limiter = HostLimiter.shared(limits)

    def one() -> None:
        with limiter.slot(url):
            with active.get_lock():
                active.value += 1
                peak.value = max(peak.value, active.value)
            time.sleep(hold)
            with active.get_lock():
                active.value -= 1

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _pause_shared(limits: SharedLimits, url: str, seconds: float) -> None:
    HostLimiter.shared(limits).pause(url, seconds)


def test_shared_limits_hold_across_worker_processes():
    context = multiprocessing.get_context("forkserver")
    limits = SharedLimits.create(context, per_host=3, per_host_original=1, interval=0.0)
    active, peak = context.Value("i", 0), context.Value("i", 0)
    large = "http://127.0.0.1:9/1/2_a_b.jpg"
    processes = [context.Process(target=_hold_shared_slot, args=(limits, large, 0.05, active, peak)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    assert peak.value == 3  # eight threads in two processes, never more than the host's cap at once

    pauser = context.Process(target=_pause_shared, args=(limits, large, 0.4))
    pauser.start()
    pauser.join(30)
    began = time.monotonic()
    with HostLimiter.shared(limits).slot(large):  # this process waits for the pause another process set
        assert time.monotonic() - began >= 0.3


def _die_holding(limits: SharedLimits, worker: int, urls: list[str], hold_lock: bool) -> None:
    """Take a slot for each URL (and the state lock), then die by SIGKILL without giving anything back."""
    limiter = HostLimiter.shared(limits, worker)
    held = [limiter.slot(url) for url in urls]  # kept referenced: a collected one would give its slot back
    for slot in held:
        slot.__enter__()
    if hold_lock:
        limits.lock.acquire()
    os.kill(os.getpid(), signal.SIGKILL)


def test_slots_and_lock_of_a_worker_killed_holding_them_are_given_back():
    context = multiprocessing.get_context("forkserver")
    limits = SharedLimits.create(context, per_host=3, per_host_original=1, interval=0.0, workers=2)
    large, original = "http://127.0.0.1:9/1/2_a_b.jpg", "http://127.0.0.1:9/1/2_c_o.jpg"
    victim = context.Process(target=_die_holding, args=(limits, 1, [large, large, original], True))
    victim.start()
    victim.join(30)
    assert victim.exitcode == -signal.SIGKILL
    assert not limits.lock.acquire(timeout=0.1)  # without help, every worker would wait forever

    assert limits.release_held(1) == 3  # two Large slots and the one Original slot
    assert limits.release_held(1) == 0  # given back once only
    limiter = HostLimiter.shared(limits, 0)
    began = time.monotonic()
    with limiter.slot(original), limiter.slot(large), limiter.slot(large), limiter.slot(large):
        assert time.monotonic() - began < 5  # the whole caps are free again, and so is the lock


def _wait_for_stop(flag: StopFlag, seen: Any) -> None:
    began = time.monotonic()
    if flag.wait(30):
        seen.value = time.monotonic() - began


def test_the_stop_flag_reaches_a_waiting_worker_process():
    context = multiprocessing.get_context("forkserver")
    flag = StopFlag(context)
    seen = context.RawValue("d", -1.0)
    waiter = context.Process(target=_wait_for_stop, args=(flag, seen))
    waiter.start()
    time.sleep(0.3)
    assert not flag.is_set() and not flag.wait(0.01)
    flag.set()
    waiter.join(10)
    assert flag.is_set() and 0 < seen.value < 5  # woken at once, not after its 30 s
