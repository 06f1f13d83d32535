"""Where everything lives under the data folder (``$FLICKR_DATA_DIR``).

::

    records/keyword=<enc>/photos.parquet        one row per photo found for the keyword
    records/keyword=<enc>/_coverage.parquet     one row per search window (ignored by dataset readers)
    records/keyword=<enc>/_state.json           harvest watermark for incremental runs
    records/keyword=<enc>/.lock                 held while the keyword is harvested
    images/<enc>/<NNNN>/<id>_<secret>_<server>_<owner>.jpg
    manifests/keyword=<enc>/manifest.parquet    one row per record: the outcome of its download
    manifests/keyword=<enc>/_journal.jsonl      rows of a download in progress (``storage.manifest``)
    manifests/keyword=<enc>/_retired.parquet    rows of photos no longer in the records (their files stay)
    manifests/keyword=<enc>/.lock               held while the keyword downloads
    manifests/keyword=<enc>/_contact_sheet.jpg  a preview of a few stored images
    catalog/catalog.parquet                     one row per unique photo over all keywords
    .state/                                     shared run state (API budget), never user data

``<enc>`` is :func:`flickr_assets.storage.keys.encode_keyword`. Every path handed out is checked to
stay inside the data folder.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from flickr_assets.storage.keys import encode_keyword, validate_keyword

FILES_PER_SHARD = 1000


class DataFolderError(ValueError):
    """The data folder cannot be created or written to."""


@dataclass(frozen=True)
class DataLayout:
    """Paths of every artefact under one data folder."""

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> "DataLayout":
        """Layout rooted at ``root`` (made absolute; created on first write)."""
        return cls(Path(root).expanduser().resolve())

    def ensure_writable(self) -> "DataLayout":
        """Create the data folder when missing; raise :class:`DataFolderError` saying why it cannot be written."""
        if self.root.exists() and not self.root.is_dir():
            raise DataFolderError(f"the data folder {self.root} is a file, not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataFolderError(f"cannot create the data folder {self.root}: {error.strerror or error}") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise DataFolderError(f"the data folder {self.root} is not writable")
        return self

    # --- records -------------------------------------------------------------------------------
    @property
    def records_root(self) -> Path:
        return self.root / "records"

    def records_dir(self, keyword: str) -> Path:
        return self._inside(self.records_root / f"keyword={self._enc(keyword)}")

    def records_file(self, keyword: str) -> Path:
        return self.records_dir(keyword) / "photos.parquet"

    def coverage_file(self, keyword: str) -> Path:
        return self.records_dir(keyword) / "_coverage.parquet"

    def harvest_state_file(self, keyword: str) -> Path:
        return self.records_dir(keyword) / "_state.json"

    def harvest_resume_file(self, keyword: str) -> Path:
        """Where an unfinished harvest says how far it got (and which part files hold its rows)."""
        return self.records_dir(keyword) / "_resume.json"

    def harvest_part_file(self, keyword: str, number: int) -> Path:
        """The rows an unfinished harvest had gathered by its ``number``-th checkpoint."""
        return self.records_dir(keyword) / f"_part-{number:04d}.parquet"

    def records_check_file(self, keyword: str) -> Path:
        """The outcome of the keyword's last records check (problems found, when)."""
        return self.records_dir(keyword) / "_check.json"

    # --- images --------------------------------------------------------------------------------
    @property
    def images_root(self) -> Path:
        return self.root / "images"

    def images_dir(self, keyword: str) -> Path:
        return self._inside(self.images_root / self._enc(keyword))

    def image_file(self, keyword: str, shard: int, file_name: str) -> Path:
        if "/" in file_name or file_name.startswith("."):
            raise ValueError(f"unsafe image file name {file_name!r}")
        return self._inside(self.images_dir(keyword) / shard_name(shard) / file_name)

    # --- manifests -----------------------------------------------------------------------------
    @property
    def manifests_root(self) -> Path:
        return self.root / "manifests"

    def manifest_dir(self, keyword: str) -> Path:
        return self._inside(self.manifests_root / f"keyword={self._enc(keyword)}")

    def manifest_file(self, keyword: str) -> Path:
        return self.manifest_dir(keyword) / "manifest.parquet"

    def retired_rows_file(self, keyword: str) -> Path:
        return self.manifest_dir(keyword) / "_retired.parquet"

    def contact_sheet_file(self, keyword: str) -> Path:
        return self.manifest_dir(keyword) / "_contact_sheet.jpg"

    def images_check_file(self, keyword: str) -> Path:
        """The outcome of the keyword's last images check (problems found, when)."""
        return self.manifest_dir(keyword) / "_check.json"

    # --- catalog -------------------------------------------------------------------------------
    @property
    def catalog_dir(self) -> Path:
        return self.root / "catalog"

    @property
    def catalog_file(self) -> Path:
        return self.catalog_dir / "catalog.parquet"

    # --- shared state --------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.root / ".state"

    def relative(self, path: Path) -> str:
        """``path`` relative to the data folder, as stored in manifests and the catalog."""
        return path.resolve().relative_to(self.root).as_posix()

    def resolve_relative(self, relative: str) -> Path:
        """Inverse of :meth:`relative`, refusing anything that would leave the data folder."""
        return self._inside(self.root / relative)

    @staticmethod
    def _enc(keyword: str) -> str:
        return encode_keyword(validate_keyword(keyword))

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ValueError(f"path {path} would leave the data folder {self.root}")
        return resolved


def shard_name(shard: int) -> str:
    """Folder name of image shard ``shard`` (``0000``, ``0001``, ...)."""
    return f"{shard:04d}"
