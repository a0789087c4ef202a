"""Item sequences and item SIDs the recommenders train on: mini-RecIF's raw tables and the Amazon categories."""

from __future__ import annotations

from pathlib import Path

from recif_bench import sid
from recif_bench.recommenders.settings import ConfigError


def recif_sequences(raw_dir: Path, domain: str) -> tuple[list[list[tuple[int, ...]]], list[tuple[int, ...]]]:
    """mini-RecIF: each train user's history + target of one domain, as SID tuples (the items of the tasks)."""
    import pandas as pd

    from recif_bench.data.builders import _list
    from recif_bench.data.training import DOMAIN_COLUMNS, RAW_FILES

    if domain not in DOMAIN_COLUMNS:
        raise ConfigError(f"data.domain must be one of {', '.join(DOMAIN_COLUMNS)}, not {domain!r}")
    (hist_col, target_col), mapping_file = DOMAIN_COLUMNS[domain]
    users = pd.read_parquet(raw_dir / RAW_FILES["users"])
    pid2sid = pd.read_parquet(raw_dir / mapping_file)
    to_sid = {int(p): tuple(int(c) for c in s) for p, s in zip(pid2sid["pid"], pid2sid["sid"])}
    train = users[users["split"] == 0]
    sequences = []
    for hist, target in zip(train[hist_col], train[target_col]):
        pids = _list(hist) + _list(target)
        sequences.append([to_sid[int(p)] for p in pids if int(p) in to_sid])
    return sequences, sorted({s for seq in sequences for s in seq})



def amazon_codes(category: str, data_dir: str, item_ids: str = "auto") -> tuple[dict, sid.SidFormat, str]:
    """Item SIDs of an Amazon category: the tasks' cached auto codes (with dedup level) or an item-codes file."""
    from recif_bench import transfer
    from recif_bench.itemic.codes import read_item_codes

    data = transfer.dataset(category, data_dir)
    path = transfer.auto_codes(data) if item_ids == "auto" else Path(item_ids.replace("{category}", category))
    codes, fmt, _ = read_item_codes(path)
    return codes, fmt, str(path)

