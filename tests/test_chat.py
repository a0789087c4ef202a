import pytest

from recif_bench import chat

SYSTEM_USER = [{"role": "system", "content": "你是推荐助手"}, {"role": "user", "content": "用户看过<|sid_begin|><s_a_1><s_b_2><s_c_3><|sid_end|>"}]


def test_non_thinking_prompt_matches_reference_rendering():
    prompt = chat.render(SYSTEM_USER, thinking=False)
    assert prompt == ("<|im_start|>system\n你是推荐助手<|im_end|>\n"
                      "<|im_start|>user\n用户看过<|sid_begin|><s_a_1><s_b_2><s_c_3><|sid_end|>/no_think<|im_end|>\n"
                      "<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_thinking_prompt_leaves_the_think_block_to_the_model():
    prompt = chat.render(SYSTEM_USER, thinking=True)
    assert prompt.endswith("<|sid_end|>/think<|im_end|>\n<|im_start|>assistant\n")


def test_suffix_goes_on_the_last_real_user_turn_only():
    messages = [{"role": "user", "content": "q1"},
                {"role": "assistant", "content": "<think>\nwhy\n</think>\n\na1"},
                {"role": "user", "content": "q2"}]
    prompt = chat.render(messages, thinking=False)
    assert "q1<|im_end|>" in prompt and "q2/no_think<|im_end|>" in prompt
    assert "<|im_start|>assistant\na1<|im_end|>" in prompt   # history reasoning is dropped


def test_part_lists_are_flattened_like_the_reference():
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"},
                                             {"type": "text", "text": "b"}]}]
    assert "ab/no_think" in chat.render(messages, thinking=False)


@pytest.mark.parametrize("messages, message", [
    ([], "non-empty list"),
    ([{"role": "system", "content": "only a system turn"}], "no user turn"),
    ([{"role": "user"}], "lacks 'role' or 'content'"),
    ([{"role": "user", "content": 3}], "string or a list of parts"),
])
def test_bad_chats_are_rejected(messages, message):
    with pytest.raises(chat.ChatError, match=message):
        chat.render(messages, thinking=False)


def test_model_template_uses_the_tokenizer():
    class Tok:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt, enable_thinking):
            return f"{len(messages)}|{add_generation_prompt}|{enable_thinking}"

    assert chat.render(SYSTEM_USER, True, chat.MODEL_TEMPLATE, Tok()) == "2|True|True"
    with pytest.raises(chat.ChatError, match="needs a tokenizer"):
        chat.render(SYSTEM_USER, True, chat.MODEL_TEMPLATE, None)
