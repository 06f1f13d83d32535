"""Command line: ``python -m flickr_assets.download --data-dir DIR KEYWORD [options]``.

Downloads one keyword's images from its records file (``records/keyword=<k>/photos.parquet`` unless
``--records`` says otherwise) and prints the result. Safe to interrupt and run again. Exit codes: 0 done,
1 some photos failed (run again to retry them), 2 bad input, 3 disk full, 4 the keyword is being downloaded
by another process.
"""

import argparse
import logging
import sys
from pathlib import Path

from flickr_assets.download import DiskFull
from flickr_assets.download.engine import download_keyword
from flickr_assets.download.options import DownloadOptions
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.locks import KeywordBusy


def main(argv: list[str] | None = None) -> int:
    """Run one keyword download; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m flickr_assets.download", description=__doc__.split("\n")[0])
    parser.add_argument("keyword")
    parser.add_argument("--data-dir", required=True, type=Path, help="the data folder ($FLICKR_DATA_DIR)")
    parser.add_argument("--records", type=Path, help="records Parquet file (default: the keyword's records file)")
    parser.add_argument("--files-per-shard", type=int, default=DownloadOptions.files_per_shard)
    parser.add_argument("--workers", type=int, default=0, help="image processes (0: one per CPU)")
    parser.add_argument("--fetchers", type=int, default=DownloadOptions.fetchers)
    parser.add_argument("--attempts", type=int, default=DownloadOptions.attempts)
    parser.add_argument("--backoff", type=float, default=DownloadOptions.backoff)
    parser.add_argument("--quality", type=int, default=DownloadOptions.quality)
    parser.add_argument("--no-retry-failed", action="store_true", help="leave rows with status failed alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        options = DownloadOptions(
            quality=args.quality,
            workers=args.workers,
            fetchers=args.fetchers,
            attempts=args.attempts,
            backoff=args.backoff,
            files_per_shard=args.files_per_shard,
            retry_failed=not args.no_retry_failed,
        )
        layout = DataLayout.at(args.data_dir)
        records = args.records or layout.records_file(args.keyword)
        result = download_keyword(layout, args.keyword, records, options, on_progress=lambda p: print(p, flush=True))
    except DiskFull as error:
        print(f"error: {error.strerror}", file=sys.stderr)
        return 3
    except KeywordBusy as error:
        print(f"error: {error}", file=sys.stderr)
        return 4
    except (ValueError, OSError) as error:  # bad options, records or manifest; a folder that cannot be written
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result, flush=True)
    return 0 if not result.run_counts.get("failed") else 1


if __name__ == "__main__":
    sys.exit(main())
