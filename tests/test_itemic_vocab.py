"""Vocabulary expansion: ids, padding, tied/untied heads, initialisation, save/load round-trip, decoding."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

from recif_bench import chat, sid
from recif_bench.itemic import vocab
from recif_bench.models.tiny import build_tokenizer

FMT = sid.SidFormat(3, 256)


@pytest.fixture(scope="module")
def base_tokenizer():
    return build_tokenizer()


def tiny(tokenizer, tied: bool):
    torch.manual_seed(0)
    return Qwen3ForCausalLM(Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                        head_dim=16, tie_word_embeddings=tied))


@pytest.mark.parametrize("tied", [True, False])
def test_expand_adds_ordinary_tokens_and_pads_to_256(base_tokenizer, tied):
    import copy

    tok = copy.deepcopy(base_tokenizer)
    model = tiny(tok, tied)
    old_rows = len(tok)
    old_embed = model.get_input_embeddings().weight[:old_rows].clone()
    old_head = model.get_output_embeddings().weight[:old_rows].clone()
    exp = vocab.expand(model, tok, FMT, init="mean")
    assert exp.first_id == old_rows and exp.last_id == old_rows + 3 * 256 + 2 - 1
    assert tok.convert_tokens_to_ids("<s_b_0>") == old_rows + 256
    assert tok.convert_tokens_to_ids(sid.SID_END) == exp.last_id
    rows = model.get_input_embeddings().weight.shape[0]
    assert rows % 256 == 0 and rows - 256 < len(tok) <= rows and exp.vocab_rows == rows
    assert model.config.vocab_size == rows
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tied
    assert model.get_output_embeddings().weight.shape[0] == rows
    assert torch.equal(model.get_input_embeddings().weight[:old_rows], old_embed)   # old rows untouched
    assert torch.equal(model.get_output_embeddings().weight[:old_rows], old_head)
    added = tok.get_added_vocab()
    assert "<s_a_7>" in added and not any(t.content == "<s_a_7>" and t.special
                                          for t in tok.added_tokens_decoder.values())
    # mean init: every new row sits at the mean of the old rows
    mean = old_embed.mean(0)
    assert torch.allclose(model.get_input_embeddings().weight[exp.first_id], mean, atol=1e-3)


def test_expanding_twice_is_an_error(base_tokenizer):
    import copy

    tok = copy.deepcopy(base_tokenizer)
    vocab.add_itemic_tokens(tok, FMT)
    with pytest.raises(ValueError, match="expanded before"):
        vocab.add_itemic_tokens(tok, FMT)


def test_text_init_is_the_mean_of_the_item_texts(base_tokenizer):
    import copy

    tok = copy.deepcopy(base_tokenizer)
    model = tiny(tok, tied=False)
    embed = model.get_input_embeddings().weight.detach().clone()
    head = model.get_output_embeddings().weight.detach().clone()
    texts = {(1, 2, 3): "美食", (1, 5, 3): "旅行"}
    exp = vocab.expand(model, tok, FMT, init="text", item_texts=texts)
    ids = {t: tok(t, add_special_tokens=False)["input_ids"] for t in texts.values()}
    vec = {t: embed[i].mean(0) for t, i in ids.items()}
    new = model.get_input_embeddings().weight
    a1 = tok.convert_tokens_to_ids("<s_a_1>")
    assert torch.allclose(new[a1], (vec["美食"] + vec["旅行"]) / 2, atol=1e-6)   # shared code: both texts
    assert torch.allclose(new[tok.convert_tokens_to_ids("<s_b_5>")], vec["旅行"], atol=1e-6)
    head_new = model.get_output_embeddings().weight   # untied head: its own rows, same rule
    assert torch.allclose(head_new[a1], (head[ids["美食"]].mean(0) + head[ids["旅行"]].mean(0)) / 2, atol=1e-6)
    assert exp.first_id == a1 - 1   # <s_a_0> comes first


def test_tiny_model_round_trips_and_generation_keeps_itemic_tokens(tiny_model_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    text = sid.render_many([(1, 2, 3), (255, 0, 17)], FMT)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 10   # 5 tokens per item
    assert tok.decode(ids, skip_special_tokens=True) == text
    model.save_pretrained(tmp_path / "again")
    tok.save_pretrained(tmp_path / "again")
    tok2 = AutoTokenizer.from_pretrained(tmp_path / "again")
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path / "again")
    assert tok2(text, add_special_tokens=False)["input_ids"] == ids
    assert torch.equal(model2.get_input_embeddings().weight, model.get_input_embeddings().weight)
    # force itemic tokens out of generate: decoding (skip_special_tokens=True, as recif-hf) keeps them
    prompt = chat.render([{"role": "user", "content": "推荐"}], thinking=False) + sid.SID_BEGIN
    inputs = tok(prompt, return_tensors="pt", add_special_tokens=False)
    allowed = vocab.itemic_ids(tok, FMT)[:3 * 256]
    out = model2.generate(**inputs, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id,
                          prefix_allowed_tokens_fn=lambda *_: allowed)
    decoded = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(sid.CODE_TOKEN.findall(decoded)) == 3 and sid.CODE_TOKEN.sub("", decoded) == ""
