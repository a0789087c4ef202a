"""Non-LLM recommender networks, their inference and their checkpoint formats.

The library owns the models; ``trainers/`` only trains them (``recif-train sasrec | tiger | lazy-decoder
| pscore``).  ``recif-eval --model sasrec | tiger | lazy_decoder`` loads a checkpoint through
:data:`LOADERS`; the RL recipes read :class:`~recif_bench.recommenders.pscore.PScoreModel` as a reward.
Modules import torch, so they are imported when a model is loaded, not with the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from recif_bench.recommenders.base import ItemModel


def _sasrec(path: str | Path) -> ItemModel:
    from recif_bench.recommenders.sasrec import SASRecModel

    return SASRecModel(path)


def _tiger(path: str | Path) -> ItemModel:
    from recif_bench.recommenders.tiger import TigerModel

    return TigerModel.load(path)


def _lazy_decoder(path: str | Path) -> ItemModel:
    from recif_bench.recommenders.lazy_decoder import LazyDecoderModel

    return LazyDecoderModel.load(path)


LOADERS: dict[str, Callable[[str | Path], ItemModel]] = {"sasrec": _sasrec, "tiger": _tiger,
                                                         "lazy_decoder": _lazy_decoder}
