"""A tiny random Qwen3 with itemic tokens, built offline: for tests, demos and benchmarks.

No weights can be downloaded here, so the tokenizer is a byte-level BPE trained on the benchmark's
own prompt texts (so Chinese words, 是 and 否 are single tokens) or on a corpus the caller gives
(the demo model uses the mini-RecIF texts), with the Qwen3 chat tokens.  The itemic tokens are
added afterwards by :func:`recif_bench.itemic.vocab.expand`, the one way every model gets them.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from typing import Iterable, Mapping, Sequence

from recif_bench import sid
from recif_bench.data import templates
from recif_bench.itemic import vocab

CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]   # ordinary added tokens in Qwen3, so they survive decoding


def _corpus() -> list[str]:
    from recif_bench.data.mini import TOPICS

    texts = [v for name in dir(templates) if name.isupper() for v in _strings(getattr(templates, name))]
    texts += [" ".join(words) for words in TOPICS.values()] + list(TOPICS)
    texts += ["是", "否", "/think", "/no_think", "system", "user", "assistant", "\n\n", "预测分析", "精炼推理",
              "The quick brown fox jumps over the lazy dog. 0123456789"]
    return texts * 3


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return [s for v in value for s in _strings(v)]


def build_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 2000):
    """A byte-level BPE with the Qwen3 chat and think tokens and the soft-switch chat template, no itemic tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=CHAT_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(list(corpus) if corpus is not None else _corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>"])
    tokenizer.add_tokens(THINK_TOKENS, special_tokens=False)
    tokenizer.chat_template = (resources.files("recif_bench") / "templates" / "qwen3_soft_switch.jinja").read_text("utf-8")
    return tokenizer


def build_tiny_qwen3(out_dir: str | Path, fmt: sid.SidFormat = sid.SidFormat(3, 256), hidden: int = 64,
                     layers: int = 2, heads: int = 4, head_dim: int = 16, seed: int = 0,
                     corpus: Iterable[str] | None = None, vocab_size: int = 2000, init: str = "random",
                     item_texts: Mapping[Sequence[int], str] | None = None, tied: bool = True) -> Path:
    """Save a randomly initialised Qwen3 + tokenizer, expanded with ``fmt``'s itemic tokens, to ``out_dir``."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_tokenizer(corpus, vocab_size)
    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                         head_dim=head_dim, max_position_embeddings=32768, tie_word_embeddings=tied,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None)
    model = Qwen3ForCausalLM(config)
    vocab.expand(model, tokenizer, fmt, init=init, item_texts=item_texts)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a tiny random Qwen3 with itemic tokens (offline).")
    parser.add_argument("out_dir")
    parser.add_argument("--sid-levels", type=int, default=3)
    parser.add_argument("--sid-codebook", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=16, help="vLLM's CPU attention needs >= 64")
    args = parser.parse_args(argv)
    print(build_tiny_qwen3(args.out_dir, sid.SidFormat(args.sid_levels, args.sid_codebook), hidden=args.hidden,
                           heads=args.heads, head_dim=args.head_dim))


if __name__ == "__main__":
    main()
