"""Asset checks: data-quality rules of the stored tables and files, run after each materialisation."""

import functools
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from flickr_assets.catalog import check_catalog
from flickr_assets.defs.assets import photo_catalog, photo_images, photo_records
from flickr_assets.defs.partitions import keyword_partitions
from flickr_assets.defs.resources import StorageResource
from flickr_assets.storage.validate import manifest_problems, records_problems
from flickr_assets.wording import counted

MAX_LISTED = 20


def _result(problems: list[str], what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(problems)} problem(s) with {what}" if problems else f"{what}: all good",
        metadata={"problems": len(problems), "first_problems": dg.MetadataValue.md(_bullets(problems))},
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


def _per_keyword(
    context: dg.AssetCheckExecutionContext,
    file_of: Callable[[str], Path],
    problems_of: Callable[[str], list[str]],
    every_problems_of: Callable[[str], list[str]],
    what: str,
) -> dg.AssetCheckResult:
    """The check of the run's keyword (``problems_of``), or, run on its own, of every keyword with a file
    (``every_problems_of``, which may look less deep)."""
    keyword = _partition(context)
    if keyword is not None:
        return _result(problems_of(keyword), what)
    keywords = [keyword for keyword in keyword_partitions.get_partition_keys() if file_of(keyword).exists()]
    problems = [problem for keyword in keywords for problem in every_problems_of(keyword)]
    return _result(problems, f"{what} of {counted(len(keywords), 'keyword')}")


@dg.asset_check(asset=photo_records, blocking=True, description="photo_id is unique; required fields are present")
def records_are_valid(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    layout = storage.layout
    problems = functools.partial(records_problems, layout)
    return _per_keyword(context, layout.records_file, problems, problems, "records")


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
