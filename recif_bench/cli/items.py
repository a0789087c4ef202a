"""``recif-items``: fit an RQ-KMeans item tokenizer, encode a catalogue into SIDs, report their quality.

Input vectors come from ``--embeddings items.npy`` (row r = item r+1) or from an Amazon category's
item text (``--dataset beauty --data-dir ../shared/data/amazon``, embedded with ``--embedder``,
cached).  Examples::

    recif-items fit    --dataset beauty --data-dir D --levels 3 --codebook-size 256 --out beauty.npz
    recif-items encode --dataset beauty --data-dir D --codebooks beauty.npz --dedup --out beauty_codes.json
    recif-items report --dataset beauty --data-dir D --codebooks beauty.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from recif_bench.data.reader import DataError
from recif_bench.itemic.collisions import CatalogueError, ItemCatalogue, ItemId
from recif_bench.itemic.embed import EmbeddingError, check_embeddings
from recif_bench.itemic.hartigan import PRECISIONS
from recif_bench.itemic.rqkmeans import BACKENDS, RQKMeans, collision_stats, format_report, quality_report
from recif_bench.sid import SidError, SidFormat


def _inputs(args: argparse.Namespace) -> tuple[list[int], np.ndarray]:
    """(item ids, float32 vectors) from --embeddings or from a dataset's item text."""
    if args.embeddings:
        path = Path(args.embeddings)
        if not path.exists():
            raise FileNotFoundError(f"{path}: embeddings file not found")
        x = check_embeddings(np.load(path), source=str(path))
        return list(range(1, len(x) + 1)), x
    if not (args.dataset and args.data_dir):
        raise DataError("input", "give --embeddings FILE.npy, or --dataset NAME --data-dir DIR")
    from recif_bench.data.amazon import load_amazon
    from recif_bench.itemic.embed import SentenceTransformerEmbedder, cached_embed

    data = load_amazon(args.dataset, args.data_dir)
    print(f"{args.dataset}: {len(data.items)} items; embedding their text with {args.embedder} (cached)", file=sys.stderr)
    x = cached_embed([data.texts[i] for i in data.items], SentenceTransformerEmbedder(args.embedder))
    return data.items, x


def _threads(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a thread count >= 0, got {value!r}")
    return int(value)


def fit(args: argparse.Namespace) -> None:
    _, x = _inputs(args)
    model = RQKMeans(args.levels, args.codebook_size, args.backend, args.niter, args.seed, args.sample,
                     threads=args.threads or None, precision=args.precision)
    model.fit(x)
    model.save(args.out)
    print(f"fitted {args.levels} x {args.codebook_size} on {model.n_fit} of {len(x)} items "
          f"({model.backend}, {model.fit_seconds:.1f} s) -> {args.out}")
    _print_report(model, x, dedup=True)


def encode(args: argparse.Namespace) -> None:
    from recif_bench.itemic.codes import encode_catalogue, write_item_codes

    items, x = _inputs(args)
    model = RQKMeans.load(args.codebooks)
    codes, fmt = encode_catalogue(model, x, args.dedup)
    write_item_codes(args.out, items, codes, fmt, args.dedup,
                     source={"codebooks": str(args.codebooks), "dataset": args.dataset, "embedder": args.embedder,
                             "embeddings": args.embeddings})
    stats = collision_stats(codes)
    print(f"encoded {len(items)} items as {fmt.levels}-level SIDs -> {args.out}; "
          f"collision rate {stats['collision_rate']:.2%} (largest group {stats['max_group']})")
    print(f"round trip item -> SID -> item: {round_trip(items, codes, fmt)}/{len(items)} items")


def report(args: argparse.Namespace) -> None:
    _, x = _inputs(args)
    _print_report(RQKMeans.load(args.codebooks), x, dedup=True)


def _print_report(model: RQKMeans, x: np.ndarray, dedup: bool) -> None:
    from recif_bench.itemic.codes import encode_catalogue

    codes = model.encode(x)
    print(format_report(quality_report(model, x, codes), model.codebook_size))
    if dedup:
        deduped, _ = encode_catalogue(model, x, dedup=True)
        stats = collision_stats(deduped)
        print(f"with the dedup level: {stats['unique']} unique SIDs for {stats['items']} items, "
              f"collision rate {stats['collision_rate']:.2%}")


def round_trip(items: list[int], codes: np.ndarray, fmt: SidFormat) -> int:
    """Items whose rendered SID maps back to exactly that item (all of them when SIDs are unique)."""
    catalogue = ItemCatalogue({i: ItemId(tuple(int(c) for c in row)) for i, row in zip(items, codes)}, fmt,
                              mode="group", fallback="none")
    return sum(catalogue.resolve(catalogue.render_answer(i)) == [i] for i in items)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recif-items", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, func, help_text in (("fit", fit, "fit codebooks"), ("encode", encode, "items -> SID file"),
                                  ("report", report, "usage, quantisation error, collisions")):
        s = sub.add_parser(name, help=help_text)
        s.set_defaults(func=func)
        s.add_argument("--embeddings", help="float32 .npy matrix, row r = item r+1")
        s.add_argument("--dataset", help="Amazon category whose item text is embedded (with --data-dir)")
        s.add_argument("--data-dir", help="folder holding <dataset>/ in the P5 format")
        s.add_argument("--embedder", default="minilm", help="minilm | qwen3-embedding-8b | sentence-transformers path")
        if name == "fit":
            s.add_argument("--levels", type=int, default=3)
            s.add_argument("--codebook-size", type=int, default=8192)
            s.add_argument("--backend", default="auto", choices=["auto", *BACKENDS],
                           help="k-means back-end (default auto = hartigan; faiss = the reference's)")
            s.add_argument("--niter", type=int, default=None,
                           help="rounds (hartigan, default 6) or Lloyd iterations (others, default 20)")
            s.add_argument("--seed", type=int, default=0)
            s.add_argument("--precision", default="auto", choices=PRECISIONS,
                           help="hartigan's cost products (auto: bfloat16 where the CPU multiplies it natively)")
            s.add_argument("--sample", type=int, default=None, help="fit on N random items, then encode all")
            s.add_argument("--threads", type=_threads, default=0,
                           help="k-means threads while fitting (default 0 = every core; 1 on a busy shared "
                                "machine, docs/items_and_amazon.md)")
            s.add_argument("--out", required=True, help="codebook file (.npz)")
        else:
            s.add_argument("--codebooks", required=True, help=".npz from `fit`, or the OneRec release model.pt")
        if name == "encode":
            s.add_argument("--dedup", action="store_true", help="append the TIGER de-duplication level")
            s.add_argument("--out", required=True, help="item-codes JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (DataError, EmbeddingError, CatalogueError, SidError, FileNotFoundError, ImportError, ValueError) as exc:
        print(f"recif-items: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
