"""Consistency rules of the catalog file; each problem is one line (the Dagster asset check shows them)."""

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flickr_assets.catalog.build import KEYWORDS_METADATA_KEY
from flickr_assets.catalog.grouping import flat_ranges, read_groups
from flickr_assets.catalog.sources import CatalogError, find_sources
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.validate import stored_image_problem

#: Most problems listed one by one per rule; the rest are summed up in one line.
MAX_LISTED = 20


def _listed(problems: list[str], total: int, what: str) -> list[str]:
    if total > len(problems):
        problems.append(f"… and {total - len(problems)} more {what}")
    return problems


def check_catalog(layout: DataLayout, keywords: Sequence[str] | None = None) -> list[str]:
    """Problems of the catalog: duplicate photo IDs, missing ``ok`` images, keyword lists that differ
    from the records of ``keywords`` (default: the keywords the catalog was built from)."""
    path = layout.catalog_file
    if not path.is_file():
        return [f"{path}: no catalog file"]
    try:
        parquet = pq.ParquetFile(path)
        table = parquet.read(columns=["photo_id", "keywords"])
    except (OSError, pa.ArrowInvalid, KeyError) as error:
        return [f"{path}: not a readable catalog ({error})"]
    if keywords is None:
        stored = (parquet.schema_arrow.metadata or {}).get(KEYWORDS_METADATA_KEY)
        keywords = json.loads(stored) if stored else None
    problems = _duplicate_ids(table["photo_id"].to_numpy())
    problems += _missing_images(layout, parquet)
    try:
        problems += _keyword_mismatches(layout, table, keywords)
    except CatalogError as error:
        problems.append(str(error))
    return problems


def _duplicate_ids(ids: np.ndarray) -> list[str]:
    unique, counts = np.unique(ids, return_counts=True)
    repeated = unique[counts > 1]
    if not len(repeated):
        return []
    shown = ", ".join(str(i) for i in repeated[:MAX_LISTED])
    return [f"{len(repeated)} photo_id values appear more than once in the catalog (e.g. {shown})"]


def _missing_images(layout: DataLayout, parquet: pq.ParquetFile) -> list[str]:
    problems: list[str] = []
    total = 0
    for group in range(parquet.num_row_groups):  # one row group at a time: bounded memory
        table = parquet.read_row_group(group, columns=["photo_id", "image_status", "image_path"])
        ok = table.filter(pc.fill_null(pc.equal(table["image_status"], "ok"), False))
        for photo_id, relative in zip(ok["photo_id"].to_pylist(), ok["image_path"].to_pylist(), strict=True):
            problem = stored_image_problem(layout, photo_id, relative)
            if problem is None:
                continue
            total += 1
            if len(problems) < MAX_LISTED:
                problems.append(problem)
    return _listed(problems, total, "photos with a missing image")


def _keyword_mismatches(layout: DataLayout, table: pa.Table, keywords: Sequence[str] | None) -> list[str]:
    sources = find_sources(layout, keywords)
    groups = read_groups(sources.records)
    names = pa.array(sources.keywords, type=pa.string())
    ids = table["photo_id"].to_numpy()
    lists = table["keywords"].combine_chunks()
    problems: list[str] = []

    extra = np.setdiff1d(ids, groups.photo_ids)
    if len(extra):
        shown = ", ".join(map(str, extra[:MAX_LISTED]))
        problems.append(f"{len(extra)} catalog photos have no record in the keywords read (e.g. {shown})")
    absent = np.setdiff1d(groups.photo_ids, ids)
    if len(absent):
        shown = ", ".join(map(str, absent[:MAX_LISTED]))
        problems.append(f"{len(absent)} photos with records are missing from the catalog (e.g. {shown})")

    _, in_catalog, in_records = np.intersect1d(ids, groups.photo_ids, assume_unique=False, return_indices=True)
    catalog_lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy().astype(np.int64)
    catalog_starts = np.concatenate(([0], np.cumsum(catalog_lengths)[:-1]))
    catalog_values = pc.fill_null(pc.index_in(pc.list_flatten(lists), value_set=names), -1).to_numpy()
    record_lengths = np.diff(groups.keyword_offsets)[in_records]
    differ = catalog_lengths[in_catalog] != record_lengths
    same = np.flatnonzero(~differ)
    lengths = record_lengths[same]
    if lengths.sum():
        a = catalog_values[flat_ranges(catalog_starts[in_catalog[same]], lengths)]
        b = groups.keyword_index[flat_ranges(groups.keyword_offsets[in_records[same]], lengths)]
        owner = np.repeat(np.arange(len(same)), lengths)
        differ[same[np.unique(owner[a != b])]] = True
    wrong = np.flatnonzero(differ)
    listed = []
    for k in wrong[:MAX_LISTED]:
        photo = in_records[k]
        start, end = groups.keyword_offsets[photo], groups.keyword_offsets[photo + 1]
        record_list = [sources.keywords[i] for i in groups.keyword_index[start:end]]
        catalog_list = lists[int(in_catalog[k])].as_py()
        listed.append(
            f"photo {ids[in_catalog[k]]}: keywords {catalog_list} in the catalog, {record_list} in the records"
        )
    return problems + _listed(listed, len(wrong), "photos with wrong keyword lists")
