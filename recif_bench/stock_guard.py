"""What stock lm-eval backends (``lm_eval --model hf|vllm``) can score of our tasks, checked up front.

Our task YAMLs work with stock backends only where the stock contract gives the reference's
numbers; elsewhere the run is refused with one line instead of crashing or scoring something else.

* label_pred is a two-choice log-likelihood task.  Stock ``hf`` moves the prompt's trailing
  whitespace (``\\n\\n``) into the continuation and tokenises prompt and answer together, then scores
  every continuation token.  That equals the reference's p(是)/(p(是)+p(否)) at the answer position
  exactly when the tokenizer splits cleanly: 是 and 否 are one token each, they do not merge with the
  prompt's end, and the trailing whitespace does not merge with the text before it (the whitespace
  tokens then score the same for both answers and cancel).  Qwen3's tokenizer splits cleanly.
* The recommendation and text tasks need our contract (32 beam-search candidates per prompt, the
  ``<|sid_begin|>`` answer prefix, the thinking stage); stock ``hf`` crashes on those keys and
  stock ``vllm`` silently keeps one candidate, so they are refused.

``recif-lm-eval`` names its ``--model`` in :data:`MODEL_ENV`; our own backends (``recif-*``) are
never refused.  ``recif-eval`` does not pass the model arguments as task metadata, so it is never
checked either.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

MODEL_ENV = "RECIF_LM_EVAL_MODEL"
OUR_PREFIX = "recif-"
ANSWERS = ("是", "否")
PROMPTS_CHECKED = 64


class StockRefused(SystemExit):
    """A stock backend cannot give the reference's numbers on a task: one line, exit status 2."""

    def __init__(self, message: str) -> None:
        print(f"recif-bench: {message}", file=sys.stderr)
        super().__init__(2)
        self.message = message


def is_stock_run(metadata_has_model: bool) -> bool:
    """A stock lm-eval run: the model arguments reached the task metadata (lm-eval's CLI / simple_evaluate
    with a model name) and the model is not one of ours."""
    return metadata_has_model and not os.environ.get(MODEL_ENV, "").startswith(OUR_PREFIX)


def boundary_problem(encode: Callable[[str], list[int]], prompt: str) -> str | None:
    """Why stock log-likelihood scoring of 是/否 after ``prompt`` differs from the reference, or None."""
    base = encode(prompt)
    for answer in ANSWERS:
        piece = encode(answer)
        if len(piece) != 1:
            return f"{answer!r} is {len(piece)} tokens, the reference reads one"
        if encode(prompt + answer) != base + piece:
            return f"the prompt's end and {answer!r} tokenise together"
    head = encode(prompt.rstrip())
    if base[:len(head)] != head:
        return "the prompt's trailing whitespace tokenises together with the text before it"
    return None


def check(task: str, kind: str, prompts: Sequence[str], pretrained: str | None, thinking: bool,
          load_tokenizer: Callable[[str], Any]) -> None:
    """Refuse (``StockRefused``) a stock run that cannot reproduce the reference on ``task``."""
    if kind != "label_pred":
        raise StockRefused(f"recif_{task}: stock lm-eval backends cannot return the task's candidates "
                           "(32 beams after <|sid_begin|>, thinking stage); run recif-eval, or recif-lm-eval "
                           "--model recif-hf|recif-vllm")
    if thinking:
        raise StockRefused(f"recif_{task}: stock lm-eval backends have no thinking stage before scoring 是/否; "
                           "run recif-eval --thinking, or recif-lm-eval --model recif-hf")
    if not pretrained:
        return
    tokenizer = load_tokenizer(pretrained)

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    for prompt in prompts[:PROMPTS_CHECKED]:
        problem = boundary_problem(encode, prompt)
        if problem:
            raise StockRefused(f"recif_{task}: with {pretrained}'s tokenizer {problem}, so stock lm-eval would "
                               "score other tokens than the reference; run recif-eval, or recif-lm-eval "
                               "--model recif-hf")
