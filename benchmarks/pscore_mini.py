"""How much of mini-RecIF's engagement structure does the P-Score model learn?  Test-user AUC per tower.

    python benchmarks/pscore_mini.py [--model runs/pscore_mini] [--data-dir path/to/mini-recif]

mini-RecIF draws every feedback flag from whether the video is on one of the user's favourite
topics (``mini.FEEDBACK``), so two references can be computed from the generator itself:

* oracle AUC: ranking the test targets by "on a favourite topic" (by "not on one" for
  not-interested), the best any model can do in expectation;
* favourite separation: the AUC of each predicted rate at telling a user's favourite-topic targets
  from the others (1.0 / 0.0 is perfect, 0.5 is a model that learned nothing).

Trains the model with ``configs/train/pscore_mini.yaml`` first when ``--model`` holds none.

Measured (2 shared CPU cores, ~25 s of training, seed 0): AUC / oracle long-view 0.634 / 0.642,
like 0.587 / 0.589, follow 0.533 / 0.562, forward 0.561 / 0.571, not-interested 0.746 / 0.797;
favourite separation 0.95 (long-view, like), 0.92 (follow), 0.93 (forward), 0.07 (not-interested).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sklearn.metrics import roc_auc_score

from recif_bench.data import mini
from recif_bench.recommenders.pscore import FUSED, PScoreModel
from trainers import pscore
from trainers.common import config as recipe_config

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train" / "pscore_mini.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/pscore_mini")
    parser.add_argument("--data-dir", default=None, help="a generated mini-RecIF folder (default: the cached one)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir) if args.data_dir else mini.default_data_dir()
    folder = Path(args.model)
    if not (folder / "metrics.json").exists():
        pscore.main(recipe_config.load(CONFIG, [f"output_dir={folder}", f"data.raw={data_dir / 'raw'}"]))
    marker = json.loads((data_dir / mini.MARKER).read_text(encoding="utf-8"))
    world = mini.World(marker["seed"], marker["scale"])
    model = PScoreModel.load(folder)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["test"]

    rates: dict[str, list[float]] = {t: [] for t in model.towers}
    labels: dict[str, list[int]] = {t: [] for t in model.towers}
    favourite: list[bool] = []
    for user in world.users:
        if user["split"] == 1:
            predicted = model.rates(user["uid"], user["target_video_pid"])
            for tower in model.towers:
                rates[tower] += predicted[tower]
                labels[tower] += user[f"target_video_{tower}"]
            favourite += [world.videos[p] in user["favourites"] for p in user["target_video_pid"]]
    print(f"{'tower':<16}{'auc':>8}{'wuauc':>8}{'oracle':>8}{'fav_sep':>9}{'pos_rate':>10}{'n':>7}")
    for tower in model.towers:
        oracle = roc_auc_score(labels[tower], [f != (tower == "not_interested") for f in favourite])
        separation = roc_auc_score(favourite, rates[tower])
        m = metrics[tower]
        print(f"{tower:<16}{m['auc']:>8.3f}{m['wuauc']:>8.3f}{oracle:>8.3f}{separation:>9.3f}"
              f"{m['positive_rate']:>10.3f}{m['n']:>7}")
    m = metrics[FUSED]
    print(f"{'fused':<16}{m['auc']:>8.3f}{m['wuauc']:>8.3f}{'':>17}{m['positive_rate']:>10.3f}{m['n']:>7}")


if __name__ == "__main__":
    main()
