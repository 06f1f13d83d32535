"""Turn the core's results into the metadata a person wants to see on a materialisation."""

import base64
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from flickr_assets.catalog import CatalogResult
from flickr_assets.download import DownloadResult
from flickr_assets.flickr.harvest_keyword import HarvestResult
from flickr_assets.storage.layout import DataLayout

PREVIEW_ROWS = 10
RECORD_PREVIEW_COLUMNS = ["photo_id", "title", "owner_name", "date_upload", "license", "latitude", "longitude"]
# A contact sheet is embedded in the event log as a data URL: keep it small.
MAX_EMBEDDED_IMAGE_BYTES = 60_000


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """``schema``'s columns as Dagster's ``dagster/column_schema`` (the asset's Columns tab in the UI).
    Every table here holds one row per photo ID (per keyword for records and manifests)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                field.name,
                str(field.type),
                constraints=dg.TableColumnConstraints(nullable=field.nullable, unique=field.name == "photo_id"),
            )
            for field in schema
        ]
    )


def harvest_metadata(layout: DataLayout, keyword: str, result: HarvestResult) -> dict[str, Any]:
    """Rows, new rows, API calls and their efficiency, coverage, date range and a preview of the records."""
    path = layout.records_file(keyword)
    metadata: dict[str, Any] = {
        "dagster/partition_row_count": dg.MetadataValue.int(result.rows),
        "rows": dg.MetadataValue.int(result.rows),
        "new_rows": dg.MetadataValue.int(result.new_rows),
        "gone_rows": dg.MetadataValue.int(result.dropped_rows),  # missed by two full walks in a row
        "kept_unseen_rows": dg.MetadataValue.int(result.kept_unseen),  # missed by this full walk only
        "api_calls": dg.MetadataValue.int(result.calls),
        "http_requests": dg.MetadataValue.int(result.http_requests),
        "retries": dg.MetadataValue.int(result.retries),
        "reported_total": dg.MetadataValue.int(result.reported_total or 0),
        "rows_received": dg.MetadataValue.int(result.rows_received),
        "unique_harvested": dg.MetadataValue.int(result.unique_harvested),
        "windows": dg.MetadataValue.int(result.windows),
        "mode": dg.MetadataValue.text("incremental" if result.incremental else "full"),
        "searched_from": dg.MetadataValue.timestamp(result.start),
        "searched_until": dg.MetadataValue.timestamp(result.end),
        "elapsed_seconds": dg.MetadataValue.float(round(result.elapsed, 2)),
        "api_budget_wait_seconds": dg.MetadataValue.float(round(result.budget_wait, 2)),
        "retry_backoff_seconds": dg.MetadataValue.float(round(result.backoff, 2)),
        "path": dg.MetadataValue.path(str(path)),
        "preview": dg.MetadataValue.md(_markdown_preview(path, RECORD_PREVIEW_COLUMNS)),
        "skipped_photos": dg.MetadataValue.int(sum(result.skipped.values())),
    }
    if result.calls_per_1000 is not None:  # a run that found nothing new has no rate (and no 1-call "rate")
        metadata["calls_per_1000_photos"] = dg.MetadataValue.float(round(result.calls_per_1000, 2))
    if result.skipped:
        metadata["skipped_reasons"] = dg.MetadataValue.json(result.skipped)
    if result.latest_upload is not None:
        metadata["latest_upload"] = dg.MetadataValue.timestamp(result.latest_upload)
    return metadata


def download_metadata(layout: DataLayout, keyword: str, result: DownloadResult) -> dict[str, Any]:
    """Counts per status, bytes, speed and a contact sheet of stored images."""
    metadata: dict[str, Any] = {
        "dagster/partition_row_count": dg.MetadataValue.int(sum(result.counts.values())),  # manifest rows
        "records": dg.MetadataValue.int(result.records),
        "handled_this_run": dg.MetadataValue.int(result.done),
        "images_per_second": dg.MetadataValue.float(round(result.images_per_s, 2)),
        "bytes_fetched": dg.MetadataValue.int(result.bytes_fetched),
        "http_requests": dg.MetadataValue.int(result.requests),
        "linked_from_other_keywords": dg.MetadataValue.int(result.linked),
        # stored files whose embedded metadata (Exif, XMP, comment) was rewritten: their record changed
        "restamped": dg.MetadataValue.int(result.restamped),
        "elapsed_seconds": dg.MetadataValue.float(round(result.elapsed_s, 2)),
        "manifest": dg.MetadataValue.path(str(result.manifest)),
        "images": dg.MetadataValue.path(str(layout.images_dir(keyword))),
        "status_counts": dg.MetadataValue.json(dict(sorted(result.counts.items()))),
    }
    for status, count in sorted(result.counts.items()):
        metadata[f"status_{status}"] = dg.MetadataValue.int(count)
    if result.failures:
        metadata["failure_reasons"] = dg.MetadataValue.json(result.failures)
    if result.checked:  # files of a manifest from before metadata digests, read back once and up to date
        metadata["metadata_checked"] = dg.MetadataValue.int(result.checked)
    if result.temp_files_removed:
        metadata["temp_files_removed"] = dg.MetadataValue.int(result.temp_files_removed)  # left by a killed run
    if result.contact_sheet and result.contact_sheet.exists():
        metadata["contact_sheet_path"] = dg.MetadataValue.path(str(result.contact_sheet))
        if result.done:  # a run that changed nothing would store the same picture in the event log again
            metadata["contact_sheet"] = dg.MetadataValue.md(_embedded_image(result.contact_sheet))
    return metadata


def catalog_metadata(layout: DataLayout, result: CatalogResult) -> dict[str, Any]:
    """Unique photos, overlap between keywords, duplicate groups, and a preview."""
    return {
        "dagster/row_count": dg.MetadataValue.int(result.rows),
        "rows": dg.MetadataValue.int(result.rows),
        "records_read": dg.MetadataValue.int(result.records_read),
        "photos_in_several_keywords": dg.MetadataValue.int(result.multi_keyword_photos),
        "photos_with_images": dg.MetadataValue.int(result.photos_with_images),
        "exact_duplicate_groups": dg.MetadataValue.int(result.exact_duplicate_groups),
        "near_duplicate_groups": dg.MetadataValue.int(result.near_duplicate_groups),
        "keywords": dg.MetadataValue.int(len(result.keywords_read)),
        "keywords_not_materialised": dg.MetadataValue.json(result.missing_keywords),
        "keywords_without_images": dg.MetadataValue.json(result.keywords_without_manifest),
        "elapsed_seconds": dg.MetadataValue.float(round(result.elapsed_s, 2)),
        "stage_seconds": dg.MetadataValue.json({stage: round(s, 2) for stage, s in result.stage_seconds.items()}),
        "near_duplicate_search": dg.MetadataValue.text(_near_plan_text(result)),
        "orphan_manifest_rows": dg.MetadataValue.int(result.orphan_manifest_rows),
        "path": dg.MetadataValue.path(str(layout.catalog_file)),
        "preview": dg.MetadataValue.md(_table_markdown(result.preview.slice(0, PREVIEW_ROWS))),
    }


def _near_plan_text(result: CatalogResult) -> str:
    within = f"hashes within {result.near_distance} bits"
    if result.near_plan is None or result.photos_with_images < 2:
        return f"{within}; no pair of images to compare"
    return f"{within}; {result.near_plan}"


def _markdown_preview(path: Path, columns: list[str]) -> str:
    if not path.exists():
        return "(no rows)"
    file = pq.ParquetFile(path)
    if file.metadata.num_rows == 0:
        return "(no rows)"
    batch = next(file.iter_batches(batch_size=PREVIEW_ROWS, columns=columns))
    return _table_markdown(pa.Table.from_batches([batch]))


def _table_markdown(table: pa.Table) -> str:
    if table.num_rows == 0:
        return "(no rows)"
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in table.to_pylist():
        lines.append("| " + " | ".join(_cell(row[name]) for name in names) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text[:60] + "…" if len(text) > 60 else text


def _embedded_image(path: Path) -> str:
    data = path.read_bytes()
    if len(data) > MAX_EMBEDDED_IMAGE_BYTES:
        return f"contact sheet: `{path}`"
    return f"![contact sheet](data:image/jpeg;base64,{base64.b64encode(data).decode()})"
