"""Amazon 2014 5-core data in the P5 / S3-Rec format, and the leave-one-out split of the transfer tasks.

A category is a folder ``<data_dir>/<category>/`` (``beauty``, ``sports``, ... or any other name)::

    <Name>.txt | sequential_data.txt    one user per line: ``user_id item_1 ... item_n`` (1-based ids,
                                        chronological order)
    datamaps.json                       ``{"id2user": {id: reviewerID}, "id2item": {id: ASIN}}``
    item_text.txt | item_generative_indexing_phase_0.txt
                                        ``ASIN text`` per line (full titles from our builder, or the
                                        IDGenRec title phrases shipped in shared/)
    grlm/ (optional)                    GRLM's keyword IDs in GRLM's own id space, joined to ours by
                                        ``grlm_item_id2p5_item_id.json``

Split (GRLM protocol, spec amazon_and_baselines §1.3): per user the last item is the test target,
the second-to-last the validation target, the rest training; a prompt shows the 19 items before the
target (``items[-20:]`` minus the target).  Ranking is over the full catalogue.

:func:`load_amazon` validates everything before anything is evaluated: a missing file, an item id
without an ASIN, an ASIN without text or an empty catalogue is one :class:`DataError` naming the
file.  :func:`build_from_raw` makes the same files from the raw 2014 review + meta downloads.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from recif_bench.data.reader import DataError

log = logging.getLogger(__name__)

SEQUENCE_FILE = "sequential_data.txt"
MAPS_FILE = "datamaps.json"
TEXT_FILES = ("item_text.txt", "item_generative_indexing_phase_0.txt")
HISTORY_WINDOW = 20          # GRLM: item_ids[-20:], i.e. up to 19 history items + the target
MIN_LENGTH = 3               # train + validation + test

# The paper's ten categories -> the 2014 file stem (reviews_<stem>_5.json.gz, meta_<stem>.json.gz).
RAW_NAMES = {
    "beauty": "Beauty", "sports": "Sports_and_Outdoors", "toys": "Toys_and_Games", "baby": "Baby",
    "cell_phones": "Cell_Phones_and_Accessories", "grocery": "Grocery_and_Gourmet_Food",
    "health": "Health_and_Personal_Care", "home": "Home_and_Kitchen", "pet_supplies": "Pet_Supplies",
    "tools": "Tools_and_Home_Improvement",
}
RAW_URL = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/{kind}_{stem}{suffix}.json.gz"


@dataclass(frozen=True)
class Example:
    """One leave-one-out prediction: ``history`` (oldest first, at most 19 items) -> ``target``."""

    user: int
    history: tuple[int, ...]
    target: int


@dataclass
class AmazonDataset:
    category: str
    root: Path
    sequences: dict[int, list[int]]          # user id -> item ids, oldest first
    id2asin: dict[int, str]
    texts: dict[int, str]                    # item id -> text (title or title phrase)
    keywords: dict[int, tuple[str, ...]] = field(default_factory=dict)   # GRLM TIDs, when shipped
    fingerprint: str = ""
    n_short_users: int = 0                   # users with fewer than MIN_LENGTH items (not evaluated)

    @property
    def items(self) -> list[int]:
        return sorted(self.id2asin)

    def examples(self, split: str = "test", window: int = HISTORY_WINDOW) -> list[Example]:
        """Leave-one-out examples of every user, in user-id order (``test`` or ``valid``)."""
        drop = {"test": 0, "valid": 1}[split]
        out = []
        for user in sorted(self.sequences):
            seq = self.sequences[user]
            seq = seq[: len(seq) - drop] if drop else seq
            out.append(Example(user, tuple(seq[-window:-1]), seq[-1]))
        return out

    def train_counts(self, split: str = "test") -> Counter:
        """Interactions a model may learn from before predicting ``split``: everything before the target."""
        drop = {"test": 1, "valid": 2}[split]
        return Counter(item for seq in self.sequences.values() for item in seq[:-drop])

    def stats(self) -> dict[str, float]:
        lengths = [len(s) for s in self.sequences.values()]
        return {"users": len(lengths), "items": len(self.id2asin), "interactions": sum(lengths),
                "min_length": min(lengths), "max_length": max(lengths),
                "mean_length": round(sum(lengths) / len(lengths), 2), "short_users_skipped": self.n_short_users}


def category_dir(category: str, data_dir: str | Path) -> Path:
    """``<data_dir>/<category>``, or ``data_dir`` itself when it already is a category folder."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(root, "Amazon data folder not found")
    if (root / category).is_dir():
        return root / category
    if (root / MAPS_FILE).exists():
        return root
    found = sorted(p.name for p in root.iterdir() if (p / MAPS_FILE).exists())
    raise DataError(root / category, f"no Amazon category {category!r} here (categories found: {', '.join(found) or 'none'})")


def sequence_file(folder: Path) -> Path:
    if (folder / SEQUENCE_FILE).exists():
        return folder / SEQUENCE_FILE
    candidates = [p for p in sorted(folder.glob("*.txt")) if not p.name.startswith("item_")]
    if len(candidates) != 1:
        names = ", ".join(p.name for p in candidates) or "none"
        raise DataError(folder, f"expected one sequence file ({SEQUENCE_FILE} or <Name>.txt), found: {names}")
    return candidates[0]


def load_amazon(category: str, data_dir: str | Path) -> AmazonDataset:
    """Read and cross-check one category: sequences, id <-> ASIN map, item text, GRLM keywords."""
    folder = category_dir(category, data_dir)
    seq_path = sequence_file(folder)
    digest = hashlib.sha256()
    sequences, n_short = _read_sequences(seq_path, digest)
    id2asin = _read_item_map(folder / MAPS_FILE, digest)
    _check_user_count(seq_path, folder / MAPS_FILE, len(sequences) + n_short)
    unknown = sorted({i for seq in sequences.values() for i in seq} - id2asin.keys())
    if unknown:
        raise DataError(seq_path, f"{len(unknown)} item id(s) not in {MAPS_FILE} (mismatched maps), first {unknown[:5]}")
    texts = _read_texts(folder, id2asin, digest)
    keywords = _read_keywords(folder, set(id2asin))
    return AmazonDataset(category, folder, sequences, id2asin, texts, keywords,
                         "sha256:" + digest.hexdigest()[:16], n_short)


def _read_sequences(path: Path, digest) -> tuple[dict[int, list[int]], int]:
    sequences: dict[int, list[int]] = {}
    n_short = 0
    data = path.read_bytes()
    digest.update(data)
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            user, *items = (int(tok) for tok in line.split())
        except ValueError:
            raise DataError(path, f"line {lineno}: expected integers 'user item item ...'") from None
        if user in sequences:
            raise DataError(path, f"line {lineno}: user {user} appears twice")
        if len(items) < 2:
            raise DataError(path, f"line {lineno}: user {user} has {len(items)} item(s); a sequence line is "
                                  "'user item item ...' (truncated file?)")
        if len(items) < MIN_LENGTH:
            n_short += 1
            continue
        sequences[user] = items
    if not sequences:
        raise DataError(path, "empty catalogue: no user with at least 3 items")
    if n_short:
        log.warning("%s: %d users with fewer than %d items are not evaluated", path, n_short, MIN_LENGTH)
    return sequences, n_short


def _read_item_map(path: Path, digest) -> dict[int, str]:
    if not path.exists():
        raise DataError(path, "id <-> ASIN map not found")
    data = path.read_bytes()
    digest.update(data)
    try:
        raw = json.loads(data)["id2item"]
        return {int(k): str(v) for k, v in raw.items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise DataError(path, 'expected JSON {"id2item": {id: ASIN}, ...}') from None


def _check_user_count(seq_path: Path, maps_path: Path, n_users: int) -> None:
    """A sequence file cut short has fewer users than the map names (P5's datamaps list every user)."""
    try:
        listed = len(json.loads(maps_path.read_bytes()).get("id2user") or {})
    except (ValueError, AttributeError):
        return   # _read_item_map has already refused a map that is not JSON
    if listed and n_users != listed:
        raise DataError(seq_path, f"{n_users} users, but {maps_path.name} lists {listed} (file cut short or "
                                  "from another dataset?)")


def _read_texts(folder: Path, id2asin: dict[int, str], digest) -> dict[int, str]:
    path = next((folder / name for name in TEXT_FILES if (folder / name).exists()), None)
    if path is None:
        raise DataError(folder, f"no item text file ({' or '.join(TEXT_FILES)})")
    data = path.read_bytes()
    digest.update(data)
    by_asin = {}
    for line in data.decode("utf-8").splitlines():
        asin, _, text = line.strip().partition(" ")
        if asin:
            by_asin[asin] = text.strip()
    missing = [i for i, asin in id2asin.items() if asin not in by_asin]
    if missing:
        raise DataError(path, f"{len(missing)} item(s) without text (mismatched maps), first ASIN {id2asin[missing[0]]}")
    return {i: by_asin[asin] for i, asin in id2asin.items()}


def _read_keywords(folder: Path, items: set[int]) -> dict[int, tuple[str, ...]]:
    """GRLM's 5-keyword TIDs in our item ids, or {} when the category has no ``grlm/`` folder."""
    grlm = folder / "grlm"
    tid_files = sorted(grlm.glob("*_item_id2tid.json")) if grlm.is_dir() else []
    bridge = grlm / "grlm_item_id2p5_item_id.json"
    if not tid_files or not bridge.exists():
        return {}
    to_ours = {int(k): int(v) for k, v in json.loads(bridge.read_text()).items()}
    tids = json.loads(tid_files[0].read_text())
    out = {to_ours[int(k)]: tuple(str(w).lower() for w in words) for k, words in tids.items() if int(k) in to_ours}
    if set(out) != items:
        raise DataError(tid_files[0], f"keyword IDs cover {len(out)} of {len(items)} items (mismatched maps)")
    return out


# --------------------------------------------------------------------------------------------
# Builder: the same files from the raw 2014 downloads (reviews_<Cat>_5.json.gz + meta_<Cat>.json.gz)

def _json_lines(path: Path) -> Iterator[dict]:
    """The 2014 review files are JSON lines; the meta files are Python dict literals (hence literal_eval)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                try:
                    yield ast.literal_eval(line)
                except (ValueError, SyntaxError):
                    raise DataError(path, f"line {lineno}: neither JSON nor a Python dict literal") from None


def build_from_raw(reviews: Path, meta: Path, out_dir: Path, progress: bool = True) -> AmazonDataset:
    """S3-Rec / P5 preprocessing of a 5-core review file: per-user time order, 1-based ids by first appearance.

    Users are numbered in order of first appearance in the review file and items in order of first
    appearance along the users' time-sorted sequences.  Item text is the title (plus brand when
    the meta has one).  Writes ``sequential_data.txt``, ``datamaps.json`` and ``item_text.txt``.
    """
    from tqdm import tqdm

    by_user: dict[str, list[tuple[int, int, str]]] = {}
    for n, review in enumerate(tqdm(_json_lines(reviews), desc=f"reading {reviews.name}", disable=not progress)):
        try:
            by_user.setdefault(review["reviewerID"], []).append((int(review["unixReviewTime"]), n, review["asin"]))
        except (KeyError, TypeError, ValueError):
            raise DataError(reviews, f"review {n + 1}: needs reviewerID, asin and unixReviewTime") from None
    if not by_user:
        raise DataError(reviews, "empty catalogue: no reviews")
    user_ids = {u: i for i, u in enumerate(by_user, 1)}
    item_ids: dict[str, int] = {}
    sequences = {}
    for user, events in by_user.items():
        seq = [item_ids.setdefault(asin, len(item_ids) + 1) for _, _, asin in sorted(events)]
        sequences[user_ids[user]] = seq
    titles = {}
    for record in tqdm(_json_lines(meta), desc=f"reading {meta.name}", disable=not progress):
        asin = record.get("asin")
        if asin in item_ids:
            text = " ".join(str(record[k]) for k in ("title", "brand") if record.get(k))
            titles[asin] = " ".join(text.split()) or asin
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SEQUENCE_FILE).write_text(
        "".join(f"{u} {' '.join(map(str, seq))}\n" for u, seq in sequences.items()), encoding="utf-8")
    maps = {"id2user": {str(i): u for u, i in user_ids.items()}, "id2item": {str(i): a for a, i in item_ids.items()}}
    (out_dir / MAPS_FILE).write_text(json.dumps(maps), encoding="utf-8")
    (out_dir / TEXT_FILES[0]).write_text(
        "".join(f"{asin} {titles.get(asin, asin)}\n" for asin in item_ids), encoding="utf-8")
    missing = len(item_ids) - len(titles)
    if missing:
        log.warning("%s: %d items have no meta record; their text is the ASIN", meta, missing)
    return load_amazon(out_dir.name, out_dir.parent)


def download_raw(category: str, out_dir: Path) -> tuple[Path, Path]:
    """Fetch the 2014 5-core reviews and the meta file of a known category (needs the network)."""
    import urllib.request

    stem = RAW_NAMES.get(category)
    if stem is None:
        raise DataError(category, f"unknown category for download; known: {', '.join(RAW_NAMES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, suffix in (("reviews", "_5"), ("meta", "")):
        url = RAW_URL.format(kind=kind, stem=stem, suffix=suffix)
        target = out_dir / url.rsplit("/", 1)[1]
        if not target.exists():
            log.warning("downloading %s", url)
            tmp = target.with_suffix(".part")
            urllib.request.urlretrieve(url, tmp)
            tmp.replace(target)
        paths.append(target)
    return paths[0], paths[1]


def iter_categories(data_dir: str | Path) -> Iterable[str]:
    """Category folders under ``data_dir`` (those with a ``datamaps.json``)."""
    return sorted(p.name for p in Path(data_dir).iterdir() if (p / MAPS_FILE).exists())
