"""Asset checks: data-quality rules of the stored tables and files, run after each materialisation."""

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


def _materialised(file: Callable[[str], Path]) -> list[str]:
    return [keyword for keyword in keyword_partitions.get_partition_keys() if file(keyword).exists()]


@dg.asset_check(asset=photo_records, blocking=True, description="photo_id is unique; required fields are present")
def records_are_valid(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    layout = storage.layout
    keyword = _partition(context)
    if keyword is not None:
        return _result(records_problems(layout, keyword), "records")
    keywords = _materialised(layout.records_file)
    problems = [problem for k in keywords for problem in records_problems(layout, k)]
    return _result(problems, f"records of {counted(len(keywords), 'keyword')}")


@dg.asset_check(
    asset=photo_images,
    description="every `ok` row's image exists with its sha256; no shard folder holds more than 1,000 files "
    "(run on its own, without a keyword: every keyword's images exist, hashes not read)",
)
def images_match_manifest(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    layout = storage.layout
    keyword = _partition(context)
    if keyword is not None:
        return _result(manifest_problems(layout, keyword), "images")
    # Hashing every image of every keyword could take hours; a keyword's run checks its hashes.
    keywords = _materialised(layout.manifest_file)
    problems = [problem for k in keywords for problem in manifest_problems(layout, k, verify_hashes=False)]
    return _result(problems, f"images of {counted(len(keywords), 'keyword')}")


@dg.asset_check(
    asset=photo_catalog,
    description="photo_id is unique; every catalog image exists; each photo's keywords are those whose records "
    "hold it, over the keywords the catalog was built from (the keyword partitions of its run)",
)
def catalog_is_consistent(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    return _result(check_catalog(storage.layout), "catalog")


CHECKS = [records_are_valid, images_match_manifest, catalog_is_consistent]
