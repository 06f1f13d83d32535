"""Asset checks: data-quality rules of the stored tables and files, run after each materialisation."""

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from flickr_assets.catalog import check_catalog
from flickr_assets.defs.assets import photo_catalog, photo_images, photo_records
from flickr_assets.defs.partitions import keyword_partitions
from flickr_assets.defs.resources import StorageResource
from flickr_assets.storage.atomic import write_text
from flickr_assets.storage.validate import manifest_problems, records_problems
from flickr_assets.wording import counted

MAX_LISTED = 20


def _result(problems: list[str], what: str, elsewhere: dict[str, int] | None = None) -> dg.AssetCheckResult:
    """Problems of the checked files fail the check (ERROR). Problems other keywords had at their last check
    (``elsewhere``) fail it as a warning, which blocks nothing: the asset's check status then stays failed
    until every keyword checks clean, not only the keyword of the latest run."""
    metadata = {"problems": len(problems), "first_problems": dg.MetadataValue.md(_bullets(problems))}
    description = f"{len(problems)} problem(s) with {what}" if problems else f"{what}: all good"
    if elsewhere:
        listed = ", ".join(f"{keyword!r} ({count})" for keyword, count in list(elsewhere.items())[:5])
        more = f" and {len(elsewhere) - 5} more" if len(elsewhere) > 5 else ""
        their = "its" if len(elsewhere) == 1 else "their"
        others = counted(len(elsewhere), "other keyword")
        description += f"; {others} had problems at {their} last check: {listed}{more}"
        metadata["keywords_with_problems"] = dg.MetadataValue.json(elsewhere)
    return dg.AssetCheckResult(
        passed=not problems and not elsewhere,
        severity=dg.AssetCheckSeverity.ERROR if problems else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def _bullets(problems: list[str]) -> str:
    lines = [f"- {p}" for p in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(f"- … and {len(problems) - MAX_LISTED} more")
    return "\n".join(lines) or "none"


def _partition(context: dg.AssetCheckExecutionContext) -> str | None:
    # A check on a partitioned asset runs in the partition's run; its key is in the run's tags. A check run on
    # its own (the UI's "Execute" on the check) has no partition.
    return context.run.tags.get("dagster/partition")


def _remember(outcome_file: Path, problems: list[str]) -> None:
    if outcome_file.parent.exists():
        checked = datetime.now(UTC).isoformat(timespec="seconds")
        write_text(outcome_file, json.dumps({"problems": len(problems), "first": problems[:3], "checked": checked}))


def _remembered(outcome_file: Path) -> int:
    """Problems found by the last check whose outcome is in ``outcome_file`` (0 if none is known)."""
    try:
        count = json.loads(outcome_file.read_text(encoding="utf-8"))["problems"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return count if isinstance(count, int) else 0


def _per_keyword(
    context: dg.AssetCheckExecutionContext,
    file_of: Callable[[str], Path],
    outcome_of: Callable[[str], Path],
    problems_of: Callable[[str], list[str]],
    every_problems_of: Callable[[str], list[str]],
    what: str,
) -> dg.AssetCheckResult:
    """The check of the run's keyword (``problems_of``, its outcome kept in ``outcome_of(keyword)``), with what
    the other keywords' last checks found; or, run on its own, of every keyword with a file
    (``every_problems_of``, which may look less deep)."""
    keyword = _partition(context)
    keywords = keyword_partitions.get_partition_keys()
    if keyword is not None:
        problems = problems_of(keyword)
        _remember(outcome_of(keyword), problems)
        elsewhere = {other: n for other in keywords if other != keyword and (n := _remembered(outcome_of(other)))}
        return _result(problems, f"{what} of {keyword!r}", elsewhere)
    # Not remembered per keyword: ``every_problems_of`` may look less deep than a keyword's own check.
    keywords = [keyword for keyword in keywords if file_of(keyword).exists()]
    problems = [problem for keyword in keywords for problem in every_problems_of(keyword)]
    return _result(problems, f"{what} of {counted(len(keywords), 'keyword')}")


@dg.asset_check(asset=photo_records, blocking=True, description="photo_id is unique; required fields are present")
def records_are_valid(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    layout = storage.layout
    problems = functools.partial(records_problems, layout)
    return _per_keyword(context, layout.records_file, layout.records_check_file, problems, problems, "records")


@dg.asset_check(
    asset=photo_images,
    description="every `ok` row's image exists with its sha256; no shard folder holds more than 1,000 files "
    "(run on its own, without a keyword: every keyword's images exist, hashes not read)",
)
def images_match_manifest(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    layout = storage.layout
    # Hashing every image of every keyword could take hours; a keyword's run checks its hashes.
    return _per_keyword(
        context,
        layout.manifest_file,
        layout.images_check_file,
        functools.partial(manifest_problems, layout),
        functools.partial(manifest_problems, layout, verify_hashes=False),
        "images",
    )


@dg.asset_check(
    asset=photo_catalog,
    description="photo_id is unique; every catalog image exists; each photo's keywords are those whose records "
    "hold it, over the keywords the catalog was built from (the keyword partitions of its run)",
)
def catalog_is_consistent(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    return _result(check_catalog(storage.layout), "catalog")


CHECKS = [records_are_valid, images_match_manifest, catalog_is_consistent]
