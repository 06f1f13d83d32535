"""Keeps the keyword partitions in step with the keywords file while ``dagster dev`` (or a deployment) runs.

Dagster reads static partitions when it loads the code location, so a keyword added to the file would only
appear after *Reload definitions*. ``keywords_file_watch`` (on by default, every 30 s) reads the file and,
when its keywords differ from the loaded partitions, or from those the webserver at ``$FLICKR_WEBSERVER_URL``
(default ``http://127.0.0.1:3000``) shows, asks that webserver to reload the code location: what that button
does. The new partition then shows in the UI, and the schedules use it, without anyone reloading by hand.
(A standalone ``dagster-daemon`` reloads its own code servers every 60 s: the sensor's partitions may then
match the file while the webserver still shows the old ones, hence the second comparison.)
"""

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import dagster as dg
import requests
from requests.auth import HTTPBasicAuth

from flickr_assets.defs.partitions import keyword_partitions, keywords_file_path
from flickr_assets.flickr.keywords import KeywordsFileError, load_keywords_file
from flickr_assets.wording import counted

if TYPE_CHECKING:
    from dagster_graphql import DagsterGraphQLClient

DEFAULT_WEBSERVER_URL = "http://127.0.0.1:3000"
DEFAULT_LOCATION = "flickr_assets"
PING_TIMEOUT_S = 5
#: The partitions the webserver shows: those of one keyword-partitioned asset.
PARTITIONS_QUERY = '{ assetNodes(assetKeys: [{path: ["photo_records"]}]) { partitionKeys } }'
RELOAD_TIMEOUT_S = 300
#: Under ``dagster dev`` a reload replaces the process evaluating the sensor at once; a standalone
#: ``dagster-daemon`` runs the sensor in code servers of its own, which it reloads every 60 s: until then the
#: sensor still sees the old partitions, and must not ask the webserver again and again.
ASK_AGAIN_AFTER_S = 120

log = logging.getLogger("flickr_assets")


@dataclass
class ReloadOutcome:
    """The last reload this process asked for: for which keywords, when, and why it failed if it did."""

    keywords: tuple[str, ...] = ()
    asked_at: float = 0.0
    failure: str | None = None


last_reload = ReloadOutcome()


def webserver_url() -> str:
    """``$FLICKR_WEBSERVER_URL``: where the Dagster webserver that shows these definitions listens."""
    return (os.environ.get("FLICKR_WEBSERVER_URL") or DEFAULT_WEBSERVER_URL).rstrip("/")


def shown(url: str) -> str:
    """``url`` as ticks and logs show it: a password in it replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"))


def graphql_client(url: str, timeout: int) -> "DagsterGraphQLClient":
    """A GraphQL client of the webserver at ``url`` (``http[s]://[user:password@]host[:port][/prefix]``)."""
    # Imported here: ~0.2 s and ~300 modules that every load of the definitions (each CLI call, each run)
    # would pay, while only a changed keywords file needs them.
    from dagster_graphql import DagsterGraphQLClient

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"FLICKR_WEBSERVER_URL={shown(url)!r} is not an http(s) URL like {DEFAULT_WEBSERVER_URL}")
    return DagsterGraphQLClient(
        parts.hostname,
        port_number=parts.port,
        use_https=parts.scheme == "https",
        timeout=timeout,
        auth=_auth(parts),
        path_prefix=parts.path.rstrip("/"),
    )


def _auth(parts: SplitResult) -> HTTPBasicAuth | None:
    """The user and password of a webserver URL (``http://user:password@host``), if it has them."""
    return HTTPBasicAuth(unquote(parts.username), unquote(parts.password or "")) if parts.username else None


def describe_change(loaded: list[str], in_file: list[str], listed: int = 5) -> str:
    """``+added, -removed`` (the first ``listed``, then a count; or ``order changed``) between the loaded
    partitions and the file."""
    loaded_set, in_file_set = set(loaded), set(in_file)
    added = [key for key in in_file if key not in loaded_set]
    removed = [key for key in loaded if key not in in_file_set]
    parts = [f"+{key!r}" for key in added] + [f"-{key!r}" for key in removed]
    if len(parts) > listed:
        parts = [*parts[:listed], f"{len(parts) - listed} more"]
    return ", ".join(parts) if parts else "order changed"


def skipped_lines(problems: list[str], listed: int = 3) -> str:
    """The keywords file's unusable lines, the first ``listed`` of them and then a count."""
    more = f"; and {len(problems) - listed} more" if len(problems) > listed else ""
    return f"{counted(len(problems), 'line')} skipped: {'; '.join(problems[:listed])}{more}"


def webserver_answers(url: str) -> str | None:
    """None when a Dagster webserver answers at ``url``, else what went wrong, in a few words."""
    try:
        response = requests.get(f"{url}/server_info", timeout=PING_TIMEOUT_S)
        response.raise_for_status()
        if "dagster_webserver_version" not in response.json():
            return "not a Dagster webserver"
    except (requests.RequestException, ValueError) as error:
        return type(error).__name__
    return None


def webserver_partitions(url: str) -> list[str] | None:
    """The keyword partitions the webserver at ``url`` shows, or None when it cannot say."""
    parts = urlsplit(url)
    endpoint = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/") + "/graphql"
    try:
        response = requests.post(endpoint, json={"query": PARTITIONS_QUERY}, auth=_auth(parts), timeout=PING_TIMEOUT_S)
        response.raise_for_status()
        return [str(key) for key in response.json()["data"]["assetNodes"][0]["partitionKeys"]]
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
        return None


def _reload(url: str, location: str) -> None:
    # A reload that works replaces this process during the call (the webserver completes it anyway), so
    # only failures are ever seen here; the next tick reports them.
    from dagster_graphql import ReloadRepositoryLocationStatus

    try:
        info = graphql_client(url, timeout=RELOAD_TIMEOUT_S).reload_repository_location(location)
        failure = None if info.status == ReloadRepositoryLocationStatus.SUCCESS else info.message
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
    if failure:
        last_reload.failure = " ".join(failure.split())[:300]
        log.warning("reloading code location %r through %s failed: %s", location, shown(url), last_reload.failure)


@dg.sensor(
    minimum_interval_seconds=30,  # Dagster's default: each tick is two lines in the daemon's output
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reloads the code location when the keywords file's keywords differ from the partitions.",
)
def keywords_file_watch(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    path = keywords_file_path()
    loaded = keyword_partitions.get_partition_keys()
    try:
        parsed = load_keywords_file(path)
    except KeywordsFileError as error:
        return dg.SkipReason(f"keeping the {counted(len(loaded), 'loaded keyword')}: {error}")
    in_file = parsed.keywords
    url = webserver_url()
    current = loaded
    if in_file == loaded:
        shown_now = webserver_partitions(url)
        if shown_now is None or shown_now == in_file:
            # A line the user just added and that cannot be a partition would otherwise vanish without a word.
            skipped = f"; {skipped_lines(parsed.problems)}" if parsed.problems else ""
            return dg.SkipReason(f"the partitions match {path} ({counted(len(loaded), 'keyword')}){skipped}")
        current = shown_now  # this process has the new keywords (a daemon reloaded it), the webserver not yet

    change = describe_change(current, in_file)
    problem = webserver_answers(url)
    if problem:
        return dg.SkipReason(
            f"{path} changed ({change}) but no Dagster webserver answered at {shown(url)} ({problem}): "
            "set FLICKR_WEBSERVER_URL to the UI's address, or use Reload definitions"
        )
    asked_s = time.monotonic() - last_reload.asked_at
    if last_reload.keywords == tuple(in_file) and not last_reload.failure and asked_s < ASK_AGAIN_AFTER_S:
        return dg.SkipReason(f"{path} changed ({change}): reload asked {asked_s:.0f} s ago, waiting for it")
    origin = context.code_location_origin
    location = origin.location_name if origin is not None else DEFAULT_LOCATION
    failed_before, last_reload.failure = last_reload.failure, None
    last_reload.keywords, last_reload.asked_at = tuple(in_file), time.monotonic()
    # The reload replaces the process evaluating this sensor, so it must not wait for the answer here.
    threading.Thread(target=_reload, args=(url, location), daemon=True).start()
    context.log.info(f"{path} changed ({change}): reloading code location {location!r} through {shown(url)}")
    again = f" again (the last reload failed: {failed_before})" if failed_before else ""
    return dg.SkipReason(f"{path} changed ({change}): asked {shown(url)} to reload code location {location!r}{again}")
