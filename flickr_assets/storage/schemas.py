"""The typed Parquet schemas of every table the pipeline writes.

These are the contract with users: column names and types change only with a documented migration.
"""

import pyarrow as pa

TS = pa.timestamp("s", tz="UTC")

#: One row per photo found for one keyword (``records/keyword=<enc>/photos.parquet``).
RECORDS = pa.schema(
    [
        pa.field("photo_id", pa.int64(), nullable=False),
        pa.field("keyword", pa.string(), nullable=False),
        pa.field("owner", pa.string(), nullable=False),
        pa.field("owner_name", pa.string()),
        pa.field("secret", pa.string(), nullable=False),
        pa.field("server", pa.string(), nullable=False),
        pa.field("farm", pa.int32()),
        pa.field("title", pa.string()),
        pa.field("description", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("machine_tags", pa.list_(pa.string())),
        pa.field("date_upload", TS, nullable=False),
        # Owner's local time as Flickr reports it (no zone); granularity 0 s, 4 month, 6 year, 8 circa.
        pa.field("date_taken", pa.timestamp("s")),
        pa.field("date_taken_granularity", pa.int8()),
        pa.field("date_taken_unknown", pa.bool_()),
        pa.field("latitude", pa.float64()),
        pa.field("longitude", pa.float64()),
        pa.field("accuracy", pa.int8()),
        pa.field("license", pa.int16()),
        pa.field("views", pa.int64()),
        pa.field("media", pa.string()),
        pa.field("url_l", pa.string()),
        pa.field("width_l", pa.int32()),
        pa.field("height_l", pa.int32()),
        pa.field("url_o", pa.string()),
        pa.field("width_o", pa.int32()),
        pa.field("height_o", pa.int32()),
        pa.field("original_secret", pa.string()),
        pa.field("original_format", pa.string()),
        pa.field("first_seen", TS, nullable=False),
        pa.field("last_seen", TS, nullable=False),
    ]
)

#: One row per search window of a harvest (``records/keyword=<enc>/_coverage.parquet``).
COVERAGE = pa.schema(
    [
        pa.field("harvest_started", TS, nullable=False),
        pa.field("window_start", TS, nullable=False),
        pa.field("window_end", TS, nullable=False),
        pa.field("reported_total", pa.int64()),
        pa.field("rows_received", pa.int64(), nullable=False),
        pa.field("new_rows", pa.int64(), nullable=False),
        pa.field("calls", pa.int32(), nullable=False),
    ]
)

#: Download statuses. ``ok`` is stored; ``too_small``, ``unavailable``, ``not_found`` and ``invalid``
#: are final; ``failed`` may be transient and is tried again on the next run.
STATUSES = ("ok", "too_small", "unavailable", "not_found", "invalid", "failed")
FINAL_STATUSES = frozenset({"ok", "too_small", "unavailable", "not_found", "invalid"})

#: One row per record of a keyword: the outcome of its download (``manifests/keyword=<enc>/``).
MANIFEST = pa.schema(
    [
        pa.field("photo_id", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("source", pa.string()),  # "large" or "original"
        pa.field("url", pa.string()),
        pa.field("bytes_fetched", pa.int64()),
        pa.field("original_width", pa.int32()),
        pa.field("original_height", pa.int32()),
        pa.field("stored_width", pa.int32()),
        pa.field("stored_height", pa.int32()),
        # Crop box of the removed frame in the oriented source image: left, top, right, bottom.
        pa.field("crop_left", pa.int32()),
        pa.field("crop_top", pa.int32()),
        pa.field("crop_right", pa.int32()),
        pa.field("crop_bottom", pa.int32()),
        pa.field("reencoded", pa.bool_()),
        pa.field("sha256", pa.string()),  # of the stored file, metadata included
        pa.field("source_sha256", pa.string()),  # of the bytes as served: byte-identical uploads share it
        pa.field("phash", pa.int64()),  # 64-bit perceptual hash (signed view of the bits)
        pa.field("path", pa.string()),  # relative to the data folder
        pa.field("attempts", pa.int32(), nullable=False),
        pa.field("updated_at", TS, nullable=False),
        pa.field("elapsed_ms", pa.float64()),
        # sha256 of the record embedded in the stored file (imaging.metadata.metadata_digest): a record whose
        # digest differs has changed since, and the file's metadata is rewritten. Null in older manifests.
        pa.field("metadata_sha256", pa.string()),
    ]
)

#: One row per unique photo over all keywords (``catalog/catalog.parquet``).
CATALOG = pa.schema(
    [field for field in RECORDS if field.name not in ("keyword",)]
    + [
        pa.field("keywords", pa.list_(pa.string()), nullable=False),
        pa.field("num_keywords", pa.int32(), nullable=False),
        pa.field("image_status", pa.string()),
        pa.field("image_path", pa.string()),
        pa.field("image_sha256", pa.string()),
        pa.field("image_width", pa.int32()),
        pa.field("image_height", pa.int32()),
        pa.field("image_phash", pa.int64()),
        # Photos whose stored images are byte-identical share an exact group (the smallest photo_id).
        pa.field("exact_duplicate_of", pa.int64()),
        # Photos whose perceptual hashes lie within a small Hamming distance share a near group.
        pa.field("near_duplicate_group", pa.int64()),
    ]
)


def as_stored(schema: pa.Schema) -> pa.Schema:
    """``schema`` as a Parquet file gives it back: Parquet has no seconds unit, so second timestamps are
    written (and read) as milliseconds. Tables built in this form are written without a conversion."""
    fields = [
        field.with_type(pa.timestamp("ms", tz=field.type.tz))
        if pa.types.is_timestamp(field.type) and field.type.unit == "s"
        else field
        for field in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


class SchemaMismatch(ValueError):
    """A stored table whose columns cannot be brought to the schema of this version (the message says why)."""


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``'s columns, order and types. A file written by another version of the pipeline
    may lack a nullable column (filled with nulls) or hold one no longer used (dropped); a missing column that
    may not be null, or a type that does not cast, raises :class:`SchemaMismatch`."""
    if table.schema.equals(schema):
        return table
    missing = [field.name for field in schema if field.name not in table.column_names and not field.nullable]
    if missing:
        raise SchemaMismatch(f"lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for field in schema:
        if field.name not in table.column_names:
            table = table.append_column(field.name, pa.nulls(len(table), field.type))
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SchemaMismatch(f"has columns of other types than expected ({error})") from None
