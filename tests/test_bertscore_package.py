"""Our BERTScore F1 equals the ``bert-score`` package's on the same model and layer (tiny random BERT, offline)."""

import pytest

from recif_bench.judges.bertscore import BertScorer

CANDIDATES = ["女孩在吃饭", "视频氛围温馨", "使用了不粘锅 加入了盐和胡椒", "好", "主持人穿着蓝色围裙", "abc 123"]
REFERENCES = ["女孩吃饭", "温馨的视频氛围", "用中火加热黄油", "打散三个鸡蛋", "主持人穿着围裙和蓝色的帽子", "abc"]


@pytest.fixture(scope="module")
def random_bert(tmp_path_factory):
    """4 random layers over a character vocabulary, so every text has real, distinct contextual vectors."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("bert4")
    chars = sorted({c for t in CANDIDATES + REFERENCES for c in t if not c.isspace()})
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n")
    BertTokenizer(str(folder / "vocab.txt"), model_max_length=512).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=5 + len(chars), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("layer", [1, 3, 4])
def test_f1_equals_the_bert_score_package(random_bert, layer):
    bert_score = pytest.importorskip("bert_score")
    ours = BertScorer(str(random_bert), layer, batch_size=4, device="cpu").f1(CANDIDATES, REFERENCES)
    _, _, theirs = bert_score.score(CANDIDATES, REFERENCES, model_type=str(random_bert), num_layers=layer,
                                    idf=False, rescale_with_baseline=False, device="cpu", batch_size=3)
    assert ours == pytest.approx([float(x) for x in theirs], abs=1e-6)
    assert len(set(round(x, 4) for x in ours)) == len(ours)   # distinct values: the comparison has teeth
