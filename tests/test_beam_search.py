"""The one-prefill beam search returns what ``model.generate`` returns, candidate for candidate, in order."""

import random

import pytest
import torch

from recif_bench import sid
from recif_bench.models.beam import BeamSettings, beam_search, unsupported_settings
from recif_bench.models.trie import SidTrie

# prompts of different lengths in one batch: the short ones are left-padded
PROMPTS = ["用户喜欢美食<|sid_begin|>",
           "用户浏览了以下内容：旅行的视频内容 and a much longer history " * 5 + "<|sid_begin|>",
           "短<|sid_begin|>"]
FMT = sid.SidFormat(3, 256)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    assert (batch["attention_mask"] == 0).any()
    return model, tokenizer, batch


def reference(model, tokenizer, batch, k, tries=None):
    """The generate call the harness made before: K beams per prompt, each prompt prefilled K times."""
    start = batch["input_ids"].shape[1]
    constrain = None if tries is None else (lambda row, ids: tries[row].allowed(tuple(ids[start:].tolist())))
    with torch.no_grad():
        out = model.generate(**batch, num_beams=k, num_return_sequences=k, max_new_tokens=3,
                             do_sample=False, early_stopping=True, length_penalty=1.0,
                             pad_token_id=tokenizer.pad_token_id, prefix_allowed_tokens_fn=constrain)
    return out[:, start:]


def ours(model, tokenizer, batch, k, tries=None, eos=None):
    eos = eos if eos is not None else [model.generation_config.eos_token_id]
    settings = BeamSettings(k, k, 3, tuple(eos), tokenizer.pad_token_id)
    allowed = None if tries is None else (lambda prompt, prefix: tries[prompt].allowed(prefix))
    return beam_search(model, batch["input_ids"], batch["attention_mask"], settings, allowed)


def up_to_eos(rows, eos):
    """Each row cut after its first EOS: what follows is filler, which greedy (K = 1) and beams pick differently."""
    out = []
    for row in rows.tolist():
        end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
        out.append(row[:end])
    return out


def trie_of(tokenizer, codes):
    vocab = tokenizer.get_vocab()
    return SidTrie(sorted(codes), vocab, FMT, [vocab[sid.SID_END], tokenizer.eos_token_id])


@pytest.mark.parametrize("k", [1, 4, 32])
def test_free_beam_search_equals_generate(tiny, k):
    model, tokenizer, batch = tiny
    expected = reference(model, tokenizer, batch, k)
    got = ours(model, tokenizer, batch, k)
    assert got.shape == (len(PROMPTS) * k, 3)
    assert torch.equal(got, expected)
    assert len({tuple(r) for r in got[:k].tolist()}) == k   # K distinct candidates, not K copies of one


@pytest.mark.parametrize("k", [1, 4, 32])
def test_constrained_beam_search_equals_generate(tiny, k):
    model, tokenizer, batch = tiny
    rng = random.Random(0)
    catalogue = trie_of(tokenizer, {tuple(rng.randrange(256) for _ in range(3)) for _ in range(300)})
    # one trie per prompt (think-ahead restricts each prompt to its own prefixes); a catalogue of
    # 5 SIDs leaves fewer paths than beams at K = 32
    small = trie_of(tokenizer, {(1, 2, 3), (1, 2, 4), (7, 7, 7), (9, 0, 1), (9, 5, 5)})
    tries = [catalogue, small, catalogue]
    expected = reference(model, tokenizer, batch, k, tries)
    got = ours(model, tokenizer, batch, k, tries)
    assert torch.equal(got, expected)
    for prompt, trie in enumerate(tries):
        best = got[prompt * k:prompt * k + min(k, 5)].tolist()
        assert all(trie.contains(tuple(row)) for row in best)


# (K, EOS ids by rank of the first token per prompt, length_penalty, early_stopping)
ENDINGS = [
    (4, {0: range(1, 6)}, 1.0, True),     # prompt 0's hypotheses fill up: later better ones are not taken
    (8, {1: range(1, 12)}, 1.0, True),    # 11 of the top 2K end: 12K continuations are kept, K run on
    (32, {0: range(1, 41), 1: [0]}, 1.0, True),
    (32, {0: range(1, 41), 1: [0]}, 0.5, "never"),
    (4, {0: range(1, 7), 2: [0]}, 1.0, False),
]


@pytest.mark.parametrize("k,ranks,length_penalty,early_stopping", ENDINGS)
def test_hypotheses_that_end_early_equal_generate(tiny, k, ranks, length_penalty, early_stopping):
    """EOS among the likeliest tokens: short hypotheses finish, scored by sum log p / length ** length_penalty."""
    model, tokenizer, batch = tiny
    with torch.no_grad():
        first = model(**batch).logits[:, -1].argsort(-1, descending=True)
    eos = [int(first[prompt, rank]) for prompt, chosen in ranks.items() for rank in chosen]
    with torch.no_grad():
        expected = model.generate(**batch, num_beams=k, num_return_sequences=k, max_new_tokens=4, do_sample=False,
                                  early_stopping=early_stopping, length_penalty=length_penalty, eos_token_id=eos,
                                  pad_token_id=tokenizer.pad_token_id)[:, batch["input_ids"].shape[1]:]
    settings = BeamSettings(k, k, 4, tuple(eos), tokenizer.pad_token_id, length_penalty, early_stopping)
    got = beam_search(model, batch["input_ids"], batch["attention_mask"], settings)
    ended = up_to_eos(expected, eos)
    assert any(len(row) < 4 for row in ended)    # the case is exercised
    assert up_to_eos(got, eos) == ended


def test_one_beam_is_greedy_decoding(tiny):
    model, tokenizer, batch = tiny
    with torch.no_grad():
        first = model(**batch).logits[:, -1].argmax(-1)
    eos = [int(first[0])]      # the first prompt ends at once, the others run
    got = up_to_eos(ours(model, tokenizer, batch, 1, eos=eos), eos)
    with torch.no_grad():
        greedy = model.generate(**batch, do_sample=False, max_new_tokens=3, eos_token_id=eos,
                                pad_token_id=tokenizer.pad_token_id)[:, batch["input_ids"].shape[1]:]
    assert got == up_to_eos(greedy, eos) and len(got[0]) == 1


def test_generation_settings_only_generate_applies_are_named(tiny):
    model, _, _ = tiny
    config = model.generation_config
    assert unsupported_settings(config) == []
    changed = type(config)(**{**config.to_dict(), "repetition_penalty": 1.1, "no_repeat_ngram_size": 2})
    assert unsupported_settings(changed) == ["repetition_penalty", "no_repeat_ngram_size"]
