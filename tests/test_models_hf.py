"""recif-hf on a tiny random Qwen3: K candidates, constrained SIDs, one forward per label_pred prompt."""

import math

import pytest
import torch
from lm_eval.api.instance import Instance

from recif_bench import chat, sid
from recif_bench.models.hf import HFRecLM

PROMPT_MESSAGES = [{"role": "user", "content": "用户浏览了以下内容：\n" + sid.render((3, 4, 5)) + "\n请预测用户的下一个观看意向。"}]
REC_KWARGS = {"until": [], "do_sample": False, "num_beams": 4, "num_return_sequences": 4, "max_gen_toks": 3,
              "answer_prefix": "<|sid_begin|>"}


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    return HFRecLM(pretrained=str(tiny_model_dir), batch_size=2, sid_codebook=256)


def gen(prompt, kwargs=REC_KWARGS, task="recif_video"):
    request = Instance("generate_until", doc={}, arguments=(prompt, dict(kwargs)), idx=0)
    request.task_name = task
    return request


def test_beam_search_returns_k_ordered_candidates(lm):
    prompt = chat.render(PROMPT_MESSAGES, thinking=False)
    (candidates,) = lm.generate_until([gen(prompt)])
    assert isinstance(candidates, list) and len(candidates) == 4 and len(set(candidates)) == 4
    # beam order = best first: the sequence log-probabilities are non-increasing
    ids = lm.tokenizer(prompt + "<|sid_begin|>", add_special_tokens=False)["input_ids"]
    scores = []
    # a random model may emit byte fragments of one character, which no decoded text can give back
    for text in [c for c in candidates if "\ufffd" not in c]:
        new = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(new) == 3   # exactly three new tokens, decoded with the itemic tokens kept
        logprobs = lm._logprobs([ids + new])[0]
        scores.append(sum(float(logprobs[len(ids) - 1 + j, t]) for j, t in enumerate(new)))
    assert scores == sorted(scores, reverse=True)


def test_batched_and_single_requests_agree(lm):
    prompts = [chat.render([{"role": "user", "content": f"用户喜欢{w}"}], thinking=False) for w in ("美食", "旅行的视频内容")]
    together = lm.generate_until([gen(p) for p in prompts])
    alone = [lm.generate_until([gen(p)])[0] for p in prompts]
    assert together == alone   # left padding does not change the answers


def test_constrained_candidates_are_catalogue_sids(tiny_model_dir, tmp_path):
    catalogue = {(1, 2, 3): [(1, 1, 1)], (1, 2, 4): [(2, 1, 1)], (7, 7, 7): [(3, 1, 1)], (9, 0, 1): [(4, 1, 1)],
                 (9, 5, 5): [(5, 1, 1)]}
    sid.write_item_map(tmp_path / "sid2pid.json", catalogue, sid.SidFormat(3, 256))
    model = HFRecLM(pretrained=str(tiny_model_dir), constrained=True, data_dir=str(tmp_path), sid_codebook=256)
    (candidates,) = model.generate_until([gen(chat.render(PROMPT_MESSAGES, thinking=False))])
    assert len(candidates) == 4
    assert {sid.parse_body(c, sid.SidFormat(3, 256)) for c in candidates} <= set(catalogue)


def test_label_pred_scores_in_one_forward_pass(lm):
    prompt = chat.render([{"role": "user", "content": "用户会完整观看视频" + sid.render((1, 1, 1)) + "吗？"}], thinking=False)
    requests = [Instance("loglikelihood", doc={}, arguments=(prompt, c), idx=i) for i, c in enumerate(["是", "否"])]
    before = lm.forward_calls
    (ll_yes, _), (ll_no, _) = lm.loglikelihood(requests)
    assert lm.forward_calls - before == 1
    ids = torch.tensor([lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        expected = torch.log_softmax(lm.model(input_ids=ids).logits[0, -1].float(), -1)
    (yes_id,), (no_id,) = (lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("是", "否"))
    assert ll_yes == pytest.approx(float(expected[yes_id]), abs=1e-5)
    assert ll_no == pytest.approx(float(expected[no_id]), abs=1e-5)
    assert math.exp(ll_yes) + math.exp(ll_no) < 1


def test_label_pred_batched_scores_equal_one_prompt_at_a_time(lm):
    """Prompts of different lengths, batch_size 2: ceil(5 / 2) forwards, each score as the unbatched path's."""
    words = ["短", "用户看完了" * 9, "美食视频", "用户浏览了以下内容" * 4, "猫"]
    prompts = [chat.render([{"role": "user", "content": w + sid.render((1, 2, i)) + "吗？"}], thinking=False)
               for i, w in enumerate(words)]
    requests = [Instance("loglikelihood", doc={}, arguments=(p, c), idx=i)
                for i, (p, c) in enumerate((p, c) for p in prompts for c in ("是", "否"))]
    before = lm.forward_calls
    batched = lm.loglikelihood(requests)
    assert lm.forward_calls - before == 3
    alone = [score for p in prompts for score in lm._continuation_logprobs(p, ["是", "否"])]
    assert lm.forward_calls - before == 3 + len(prompts)
    assert [greedy for _, greedy in batched] == [greedy for _, greedy in alone]
    assert [value for value, _ in batched] == pytest.approx([value for value, _ in alone], abs=1e-5)
    # p(是) / (p(是) + p(否)) per prompt, the label_pred score, differs between prompts (rows are not mixed up)
    yes_share = [math.exp(y) / (math.exp(y) + math.exp(n)) for (y, _), (n, _) in zip(batched[::2], batched[1::2])]
    assert len({round(v, 6) for v in yes_share}) == len(prompts)


def test_multi_token_continuation_is_teacher_forced(lm):
    prompt = chat.render(PROMPT_MESSAGES, thinking=False)
    continuation = "<|sid_begin|><s_a_1>"
    ((value, _),) = lm.loglikelihood([Instance("loglikelihood", doc={}, arguments=(prompt, continuation), idx=0)])
    ids = lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    new = lm.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    logprobs = lm._logprobs([ids + new])[0]
    assert value == pytest.approx(sum(float(logprobs[len(ids) - 1 + j, t]) for j, t in enumerate(new)), abs=1e-5)


def test_thinking_runs_two_stages(tiny_model_dir):
    model = HFRecLM(pretrained=str(tiny_model_dir), thinking=True, sid_codebook=256)
    kwargs = dict(REC_KWARGS, thinking={"temperature": 1.0, "max_gen_toks": 5, "n": 2},
                  num_beams=4, num_return_sequences=4)
    (candidates,) = model.generate_until([gen(chat.render(PROMPT_MESSAGES, thinking=True), kwargs)])
    assert len(candidates) == 4     # 2 thoughts x 2 beams
    thoughts = [c.split("</think>\n<|sid_begin|>")[0] for c in candidates]
    assert all("</think>\n<|sid_begin|>" in c for c in candidates)
    assert thoughts[0] == thoughts[1] and thoughts[2] == thoughts[3]   # grouped thought by thought


def test_thinking_answers_each_thought_as_generate_would(tiny_model_dir):
    """Stage 1 is sampled; stage 2 is the one-prefill beam search, equal to generate's on prompt + thought."""
    model = HFRecLM(pretrained=str(tiny_model_dir), thinking=True, sid_codebook=256)
    kwargs = dict(REC_KWARGS, thinking={"temperature": 1.0, "max_gen_toks": 5, "n": 2})
    prompt = chat.render(PROMPT_MESSAGES, thinking=True)
    (candidates,) = model.generate_until([gen(prompt, kwargs)])
    bridge = "</think>\n<|sid_begin|>"
    for first in (0, 2):   # 2 thoughts x 2 beams
        thought = candidates[first].split(bridge)[0]
        ids, mask = model._encode([prompt + thought + bridge])
        with torch.no_grad():
            out = model.model.generate(input_ids=ids, attention_mask=mask, num_beams=2, num_return_sequences=2,
                                       max_new_tokens=3, do_sample=False, early_stopping=True, length_penalty=1.0,
                                       pad_token_id=model.tokenizer.pad_token_id)
        answers = model.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        assert candidates[first:first + 2] == [thought + bridge + a for a in answers]


def test_thinking_model_refuses_non_thinking_prompts(tiny_model_dir):
    model = HFRecLM(pretrained=str(tiny_model_dir), thinking=True, sid_codebook=256)
    with pytest.raises(ValueError, match="rendered without thinking"):
        model.generate_until([gen(chat.render(PROMPT_MESSAGES, thinking=False))])


def test_stop_strings_cut_text(lm):
    kwargs = {"until": ["<s_b_"], "do_sample": False, "max_gen_toks": 3, "answer_prefix": "<|sid_begin|>"}
    (candidates,) = lm.generate_until([gen(chat.render(PROMPT_MESSAGES, thinking=False), kwargs, "recif_item_understand")])
    assert len(candidates) == 1 and "<s_b_" not in candidates[0]


def test_rec_answers_equal_generate_in_request_order(lm):
    """Beam search with one prefill per prompt answers as model.generate(num_beams=K) did, in request order,
    whatever the length-sorted batches (batch_size 2) put together."""
    words = ["美食", "旅行的视频内容" * 6, "猫", "用户浏览了以下内容" * 3, "音乐"]
    prompts = [chat.render([{"role": "user", "content": f"用户喜欢{w}"}], thinking=False) for w in words]
    answers = lm.generate_until([gen(p) for p in prompts])
    for prompt, candidates in zip(prompts, answers):
        ids, mask = lm._encode([prompt + "<|sid_begin|>"])
        with torch.no_grad():
            out = lm.model.generate(input_ids=ids, attention_mask=mask, num_beams=4, num_return_sequences=4,
                                    max_new_tokens=3, do_sample=False, early_stopping=True, length_penalty=1.0,
                                    pad_token_id=lm.tokenizer.pad_token_id)
        assert candidates == lm.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)


def test_generation_config_the_search_cannot_apply_keeps_generate(tiny_model_dir):
    model = HFRecLM(pretrained=str(tiny_model_dir), sid_codebook=256)
    prompt = chat.render(PROMPT_MESSAGES, thinking=False)
    (plain,) = model.generate_until([gen(prompt)])
    model.model.generation_config.repetition_penalty = 1.3
    (candidates,) = model.generate_until([gen(prompt)])
    assert candidates != plain   # the penalty is applied
    ids, mask = model._encode([prompt + "<|sid_begin|>"])
    with torch.no_grad():
        out = model.model.generate(input_ids=ids, attention_mask=mask, num_beams=4, num_return_sequences=4,
                                   max_new_tokens=3, do_sample=False, early_stopping=True,
                                   pad_token_id=model.tokenizer.pad_token_id)
    assert candidates == model.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
