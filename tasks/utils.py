"""lm-eval hooks of the RecIF-Bench tasks; the logic lives in recif_bench.harness."""
from recif_bench.harness import (  # noqa: F401  (names are referenced by the task YAMLs)
    agg_auc,
    agg_count,
    agg_wuauc,
    load_docs,
    process_label_pred,
    process_rec,
    process_text,
)
