"""``recif-data``: prepare and check datasets.

``recif-data amazon --dataset beauty --data-dir ../shared/data/amazon``
    validate a category in the P5 format and print its statistics;
``recif-data amazon --dataset beauty --reviews reviews_Beauty_5.json.gz --meta meta_Beauty.json.gz --out D``
    build ``D/beauty/`` from the raw 2014 files (``--download`` fetches them first; needs the network).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recif_bench.data.reader import DataError


def amazon(args: argparse.Namespace) -> None:
    from recif_bench.data import amazon as az

    if args.download or args.reviews or args.meta:
        if not args.out:
            raise DataError("--out", "building a category needs --out DIR")
        if args.download:
            reviews, meta = az.download_raw(args.dataset, Path(args.out) / "raw")
        elif not (args.reviews and args.meta):
            raise DataError("--reviews/--meta", "give both raw files (reviews_<Cat>_5.json.gz and meta_<Cat>.json.gz)")
        else:
            reviews, meta = Path(args.reviews), Path(args.meta)
        for path in (reviews, meta):
            if not path.exists():
                raise DataError(path, "raw file not found")
        data = az.build_from_raw(reviews, meta, Path(args.out) / args.dataset)
        print(f"wrote {data.root}")
    else:
        if not args.data_dir:
            raise DataError("--data-dir", "give the folder holding <dataset>/ (or --reviews/--meta/--download to build it)")
        data = az.load_amazon(args.dataset, args.data_dir)
    stats = data.stats()
    print(" ".join(f"{k}={v}" for k, v in stats.items()) + f" keyword_ids={'yes' if data.keywords else 'no'}"
          f" fingerprint={data.fingerprint}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recif-data", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("amazon", help="Amazon 2014 5-core categories in the P5 format")
    a.set_defaults(func=amazon)
    a.add_argument("--dataset", required=True, help="category folder name (beauty, sports, toys, ...)")
    a.add_argument("--data-dir", help="folder holding <dataset>/ (check and print statistics)")
    a.add_argument("--reviews", help="raw reviews_<Cat>_5.json(.gz) to build from")
    a.add_argument("--meta", help="raw meta_<Cat>.json(.gz) to build from")
    a.add_argument("--download", action="store_true", help="fetch the raw 2014 files of a known category first")
    a.add_argument("--out", help="output folder; the category is written to <out>/<dataset>/")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (DataError, FileNotFoundError, OSError) as exc:
        print(f"recif-data: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
