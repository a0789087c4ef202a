"""lm-eval hooks of the RecIF-Bench tasks; the logic lives in recif_bench.harness."""
from recif_bench.harness import (  # noqa: F401  (names are referenced by the task YAMLs)
    agg_auc,
    agg_count,
    agg_judge_failed,
    agg_llm_score,
    agg_llm_score_strict,
    agg_wip_macro,
    agg_wip_macro_strict,
    agg_wip_micro,
    agg_wuauc,
    load_docs,
    process_label_pred,
    process_rec,
    process_text,
    score_rec_corpus,
)
from recif_bench.transfer import load_docs as load_amazon_docs  # noqa: F401,E402  (the amazon_* tasks)
from recif_bench.transfer import process_results as process_amazon  # noqa: F401,E402
