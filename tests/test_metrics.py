"""Metric values against hand-computed cases."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from recif_bench import sid
from recif_bench.metrics.classification import auc, label_from_answer, wuauc, yes_probability
from recif_bench.metrics.ranking import RecScorer, summarise_rec


def body(*codes):
    return sid.render_body(codes)


A, B, C, D = body(1, 1, 1), body(2, 2, 2), body(3, 3, 3), body(4, 4, 4)
ANSWER_ABC = sid.render_many([(1, 1, 1), (2, 2, 2), (3, 3, 3)])


@pytest.fixture
def item_map(tmp_path):
    path = tmp_path / "sid2pid.json"
    sid.write_item_map(path, {(1, 1, 1): [(11, 5, 5)], (2, 2, 2): [(22, 5, 5)], (3, 3, 3): [(33, 9, 2), (34, 8, 2)],
                              (4, 4, 4): [(44, 1, 1)]})
    return sid.SidItemMap.load(path, seed=0)


def test_multi_target_recall_and_position1():
    scorer = RecScorer(ks=(1, 3))
    m = scorer([D, B, C], ANSWER_ABC)
    assert m["pass@1"] == 0 and m["pass@3"] == 1
    assert m["recall@1"] == 0 and m["recall@3"] == pytest.approx(2 / 3)
    assert m["position1_pass@3"] == 0            # the first target A is never predicted
    assert scorer([A], ANSWER_ABC)["position1_pass@1"] == 1


def test_ndcg_by_hand():
    m = RecScorer(ks=(3,))([D, B, C], ANSWER_ABC)
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@3"] == pytest.approx(dcg / idcg)


def test_duplicates_waste_slots_unless_dedup():
    answer = sid.render_many([(1, 1, 1), (2, 2, 2)])
    first_k = RecScorer(ks=(2,))([A, A, B], answer)
    assert first_k["recall@2"] == 0.5            # the duplicate A took B's slot, as in the reference
    deduped = RecScorer(ks=(2,), dedup=True)([A, A, B], answer)
    assert deduped["recall@2"] == 1.0


def test_invalid_and_empty_outputs_score_zero_and_count(item_map):
    scorer = RecScorer(item_map=item_map, ks=(1, 32))
    junk = ["", "hello", "<s_a_1><s_b_1>", "<s_a_1><s_b_1><s_c_99999>"]
    m = scorer(junk, ANSWER_ABC, [11, 22, 33])
    assert m["n_invalid"] == 1 and m["legal_rate"] == 0
    assert all(v == 0 for k, v in m.items() if k not in ("n_invalid",))
    empty = scorer([], ANSWER_ABC, [11])
    assert empty["n_invalid"] == 1 and empty["recall@32"] == 0 and empty["pid_recall@32"] == 0


def test_legal_rate_counts_catalogue_sids(item_map):
    m = RecScorer(item_map=item_map)([A, body(9, 9, 9), "junk", B], ANSWER_ABC, [11])
    assert m["legal_rate"] == 0.5 and m["n_invalid"] == 0


def test_thinking_generations_are_read_after_the_thought():
    generation = "用户喜欢美食</think>\n<|sid_begin|>" + B
    assert RecScorer(ks=(1,))([generation], ANSWER_ABC)["recall@1"] == pytest.approx(1 / 3)


def test_pid_mode_with_collisions_and_zero_ids(item_map):
    scorer = RecScorer(item_map=item_map, ks=(1, 2))
    chosen = item_map.item_for((3, 3, 3))
    assert chosen in (33, 34)
    m = scorer([C, A], ANSWER_ABC, [0, chosen, 11, chosen])
    assert m["pid_pass@1"] == 1 and m["pid_position1_pass@1"] == 1   # zeros dropped: first target = chosen
    assert m["pid_recall@2"] == 1.0
    other = 67 - chosen                     # the colliding item not chosen by the seeded tie-break
    assert scorer([C], ANSWER_ABC, [other])["pid_pass@1"] == 0


def test_summarise_means_over_all_samples():
    rows = [{"recall@1": 1.0, "n_invalid": 0.0}, {"recall@1": 0.0, "n_invalid": 1.0}]
    assert summarise_rec(rows) == {"recall@1": 0.5, "n_invalid": 1.0}


def test_label_and_yes_probability():
    assert label_from_answer("是<|im_end|>") == 1 and label_from_answer("否") == 0
    assert label_from_answer("是否") == 1 and label_from_answer("maybe") is None
    assert yes_probability(math.log(0.3), math.log(0.1)) == pytest.approx(0.75)
    assert yes_probability(-1000.0, 0.0) == pytest.approx(0.0) and yes_probability(0.0, -1000.0) == 1.0


def test_auc_ties_and_conventions():
    assert auc([0.5, 0.5], [1, 0]) == 0.5
    assert auc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)   # 3.5 of 4 pairs
    assert auc([0.2, 0.3], [1, 1]) == 0.5 and auc([], []) == 0.0


def test_wuauc_by_hand():
    # user a: perfect (AUC 1, 3 samples); user b: inverted (AUC 0, 2 samples); user c: one class, excluded
    scores = [0.9, 0.8, 0.1, 0.2, 0.7, 0.5, 0.6]
    labels = [1, 1, 0, 1, 0, 1, 1]
    users = ["a", "a", "a", "b", "b", "c", "c"]
    assert wuauc(scores, labels, users) == pytest.approx((1.0 * 3 + 0.0 * 2) / 5)
    assert wuauc([0.1, 0.2], [1, 1], ["x", "y"]) == 0.0


def test_wuauc_equals_sklearn_per_user_with_ties():
    rng = np.random.default_rng(0)
    scores, labels, users = rng.integers(0, 4, 500) / 3, rng.integers(0, 2, 500), rng.integers(0, 25, 500)
    total = weight = 0.0
    for user in np.unique(users):
        mask = users == user
        if len(np.unique(labels[mask])) == 2:
            total += roc_auc_score(labels[mask], scores[mask]) * mask.sum()
            weight += mask.sum()
    assert wuauc(scores, labels, users) == pytest.approx(total / weight)


def test_batch_gc_raises_the_threshold_and_restores_it():
    import gc

    from recif_bench.gc_tuning import BATCH_THRESHOLD, batch_gc

    before = gc.get_threshold()
    with batch_gc():
        assert gc.get_threshold()[0] == max(BATCH_THRESHOLD, before[0])
        assert gc.get_threshold()[1:] == before[1:]
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), batch_gc():
        raise RuntimeError("an evaluation error")
    assert gc.get_threshold() == before
