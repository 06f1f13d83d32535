"""Dagster resources: the Flickr API client and the data folder, configured from the environment.

Secrets (``FLICKR_API_KEY``, ``FLICKR_API_SECRET``) reach the resources only as ``EnvVar`` references, so
the UI and the run config show the variable's name, never its value.
"""

import logging
import os
import threading
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from flickr_assets.defs.recovery import recover_dead_runs, tag_run_place
from flickr_assets.flickr.client import FLICKR_REST_URL, FlickrClient
from flickr_assets.flickr.errors import KEY_HELP
from flickr_assets.flickr.ratelimit import ApiBudget
from flickr_assets.storage.layout import DataFolderError, DataLayout

#: How often a running run looks for killed runs holding pool slots it may be waiting for.
RECOVERY_INTERVAL_S = 30.0

log = logging.getLogger(__name__)


class SettingError(ValueError):
    """An environment setting is absent or unusable (the message names it and says what to do)."""


class StorageResource(dg.ConfigurableResource):
    """The data folder (``$FLICKR_DATA_DIR``, default ``./data``) and everything under it."""

    data_dir: str = "data"

    _stop_watch: threading.Event | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Runs start here before any step asks for a pool slot: say where this run's process lives, and free the
        # slots of runs that were killed, or every later run of that pool would wait for them forever. A run
        # already waiting when the holder is killed frees them too: the check is repeated while the run lives.
        if context.instance is not None:
            if context.run is not None:
                tag_run_place(context.instance, context.run.run_id)
            recover_dead_runs(context.instance)
            self._stop_watch = threading.Event()
            watch = threading.Thread(
                target=_watch_dead_runs, args=(context.instance, self._stop_watch), name="flickr-recovery", daemon=True
            )
            watch.start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._stop_watch is not None:
            self._stop_watch.set()

    @property
    def layout(self) -> DataLayout:
        return DataLayout.at(self.data_dir)

    def writable_layout(self) -> DataLayout:
        """The layout, after making sure the data folder exists and can be written (else a one-line error)."""
        try:
            return self.layout.ensure_writable()
        except DataFolderError as error:
            raise DataFolderError(f"{error} — set FLICKR_DATA_DIR to a folder this user can write") from None


def _watch_dead_runs(instance: dg.DagsterInstance, stop: threading.Event) -> None:
    while not stop.wait(RECOVERY_INTERVAL_S):
        try:
            recover_dead_runs(instance)
        except Exception as error:  # a storage hiccup: the next round tries again
            log.warning("checking for dead runs failed: %s: %s", type(error).__name__, error)


class FlickrResource(dg.ConfigurableResource):
    """Flickr's REST API with one shared call budget for every run on this data folder."""

    api_key: str | None = None
    api_secret: str | None = None
    api_url: str = FLICKR_REST_URL
    calls_per_hour: int = 3600
    timeout_seconds: float = 15.0
    max_attempts: int = 6

    def client(self, layout: DataLayout) -> FlickrClient:
        """A client whose calls draw on the API budget stored under ``layout``."""
        if not self.api_key:
            raise SettingError(
                f"FLICKR_API_KEY is not set: {KEY_HELP} (or run `make demo` to use the bundled simulator)"
            )
        if not self.api_secret:  # every call is signed with it: Flickr would refuse them all
            raise SettingError(f"FLICKR_API_SECRET is not set: it comes with FLICKR_API_KEY — {KEY_HELP}")
        if self.calls_per_hour <= 0:
            raise SettingError(f"FLICKR_API_CALLS_PER_HOUR must be a positive number, not {self.calls_per_hour}")
        budget = ApiBudget(layout.state_dir, calls_per_hour=self.calls_per_hour)
        return FlickrClient(
            self.api_key,
            self.api_secret,
            rest_url=self.api_url,
            limiter=budget,
            timeout=self.timeout_seconds,
            max_attempts=self.max_attempts,
        )


def _env_or_none(name: str) -> dg.EnvVar | None:
    # EnvVar has no default: reference it only when set, so a missing key gives our one-line error.
    return dg.EnvVar(name) if os.environ.get(name) else None


def _int_setting(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, not {raw!r}") from None


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    """The resources as the environment configures them (see README, "Configuration")."""
    return {
        "flickr": FlickrResource(
            api_key=_env_or_none("FLICKR_API_KEY"),
            api_secret=_env_or_none("FLICKR_API_SECRET"),
            api_url=os.environ.get("FLICKR_API_URL") or FLICKR_REST_URL,
            calls_per_hour=_int_setting("FLICKR_API_CALLS_PER_HOUR", 3600),
        ),
        "storage": StorageResource(data_dir=str(Path(os.environ.get("FLICKR_DATA_DIR") or "data"))),
    }
