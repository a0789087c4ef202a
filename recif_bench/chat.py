"""Prompt rendering as the reference harness does it (spec §1.3).

The reference replaces every model's chat template by ``qwen3_soft_switch``: the Qwen3 format with
``/think`` or ``/no_think`` appended to the last user query, and an empty think block after the
generation prompt when thinking is off.  We ship that template and render it with Jinja directly,
so prompts can be built (and validated) before any tokenizer or model is loaded.  The model's own
template is an option for models that were not trained on the Qwen3 format.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Sequence

SOFT_SWITCH = "soft_switch"
MODEL_TEMPLATE = "model"

Message = Mapping[str, Any]


class ChatError(ValueError):
    """A chat that cannot be rendered (wrong shape, unknown role, non-text content)."""


def flatten_content(content: Any) -> str:
    """A message's text: strings as they are, part lists joined from their ``text`` parts.

    The reference concatenates the ``text`` of every ``type == "text"`` part with no separator
    and drops other parts (images have no meaning to a text model).
    """
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        texts = []
        for part in content:
            if not isinstance(part, Mapping):
                raise ChatError(f"content part is not an object: {part!r}")
            if part.get("type", "text") == "text":
                texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise ChatError(f"message content must be a string or a list of parts, got {type(content).__name__}")


def normalise_messages(messages: Any) -> list[dict[str, str]]:
    """Validated ``[{role, content: str}]``; raises :class:`ChatError` naming the first problem."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or len(messages) == 0:
        raise ChatError("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ChatError(f"message {i} lacks 'role' or 'content'")
        role = message["role"]
        if role not in ("system", "user", "assistant", "tool"):
            raise ChatError(f"message {i} has unknown role {role!r}")
        out.append({"role": role, "content": flatten_content(message["content"])})
    if not any(m["role"] == "user" for m in out):
        raise ChatError("messages contain no user turn")
    return out


@lru_cache(maxsize=1)
def _soft_switch_template():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    text = (resources.files("recif_bench") / "templates" / "qwen3_soft_switch.jinja").read_text("utf-8")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.from_string(text)


def render(messages: Any, thinking: bool, template: str = SOFT_SWITCH, tokenizer: Any = None) -> str:
    """The generation prompt for ``messages``.

    ``template="soft_switch"`` needs no tokenizer; ``template="model"`` uses ``tokenizer``'s own
    chat template with ``enable_thinking`` passed through (templates that ignore it just ignore it).
    """
    chat = normalise_messages(messages)
    if template == SOFT_SWITCH:
        return _soft_switch_template().render(messages=chat, add_generation_prompt=True,
                                              enable_thinking=thinking)
    if template == MODEL_TEMPLATE:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ChatError("chat_template=model needs a tokenizer that has a chat template")
        return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True,
                                             enable_thinking=thinking)
    raise ChatError(f"unknown chat template {template!r}; use {SOFT_SWITCH!r} or {MODEL_TEMPLATE!r}")


def render_with_switch(messages: Any, switch: str) -> str:
    """A generation prompt whose every user turn ends in the literal ``switch`` (``" /think"``,
    ``" /no_think"`` or ``""``) and no empty think block: the reference's on-policy distillation
    prompts, where the model itself decides whether to think (spec training §5.2)."""
    return _soft_switch_template().render(messages=normalise_messages(messages), add_generation_prompt=True,
                                          think_switch=switch)


EMPTY_THINK_BLOCK = "<think>\n\n</think>\n\n"
_THINKING_TAIL = "/think<|im_end|>\n<|im_start|>assistant\n"


def without_thinking(prompt: str) -> str:
    """The non-thinking generation prompt of the same chat, from a rendered thinking one.

    A soft-switch prompt ends in ``/think`` + the open assistant turn; the non-thinking one ends in
    ``/no_think`` + the empty think block (exactly :func:`render` with ``thinking=False``).  Other
    templates (``chat_template=model``) just get the empty block, as Qwen3's own template does.
    """
    if prompt.endswith(_THINKING_TAIL):
        return prompt[:-len(_THINKING_TAIL)] + "/no_think<|im_end|>\n<|im_start|>assistant\n" + EMPTY_THINK_BLOCK
    return prompt + EMPTY_THINK_BLOCK


def has_reasoning(answer: str) -> bool:
    """True when an assistant answer carries a non-empty ``<think>...</think>`` block."""
    if "</think>" not in answer:
        return False
    return bool(answer.split("</think>", 1)[0].split("<think>")[-1].strip())


def render_conversation(messages: Any) -> str:
    """A whole training conversation (answers included) in the soft-switch format.

    The one think/no-think convention of training, distillation, RL and evaluation (spec training
    §7.7): a user turn followed by an answer *with* reasoning ends in ``/think``; one followed by a
    plain answer ends in ``/no_think`` and the answer gets the empty block ``<think>\\n\\n</think>\\n\\n``,
    so a plain answer continues exactly the non-thinking generation prompt of :func:`render`.
    """
    chat = normalise_messages(messages)
    if chat[-1]["role"] != "assistant":
        raise ChatError("a training conversation must end with an assistant turn")
    thinking = has_reasoning(chat[-1]["content"])
    return _soft_switch_template().render(messages=chat, add_generation_prompt=False, enable_thinking=thinking)
