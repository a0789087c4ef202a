"""Vocabulary expansion: give any HF causal LM + tokenizer the itemic tokens (spec training §4.1).

The tokens are added as *ordinary* added tokens (``special_tokens=False``), in the reference's
order (all codes of level a, then b, ..., then ``<|sid_begin|>``, ``<|sid_end|>``), so decoding
with ``skip_special_tokens=True`` keeps them.  The embedding matrix is resized to a multiple of
256 rows (the reference pads 176,247 to 176,384); tied heads stay tied, untied heads get the same
new rows.  New rows are initialised at the mean of the old rows (transformers' ``mean_resizing``,
the reference's choice), by the model's own random initialiser (for models trained from scratch,
where the old rows carry no knowledge), or from item text: the row of code token ``<s_l_c>``
becomes the mean embedding of the texts of the items whose level-``l`` code is ``c``, measured in
the model's own embedding space (mean of the text's token rows), so no projection is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from recif_bench import sid

PAD_MULTIPLE = 256
INIT_CHOICES = ("mean", "random", "text")


@dataclass(frozen=True)
class Expansion:
    """Where the itemic tokens landed: ids ``first_id .. last_id`` (inclusive, delimiters included)."""

    fmt: sid.SidFormat
    first_id: int
    last_id: int
    vocab_rows: int        # embedding rows after padding

    @property
    def id_range(self) -> tuple[int, int]:
        """The reference's ``itemic_id_range`` ([151669, 176246] for Qwen3 + 3 x 8192)."""
        return self.first_id, self.last_id


def add_itemic_tokens(tokenizer: Any, fmt: sid.SidFormat) -> Expansion:
    """Add the itemic tokens to ``tokenizer`` (ordinary added tokens); an error if some already exist."""
    tokens = fmt.itemic_tokens()
    vocab = tokenizer.get_vocab()
    present = [t for t in tokens if t in vocab]
    if present:
        raise ValueError(f"tokenizer already has {len(present)} itemic tokens (e.g. {present[0]}); "
                         "it was expanded before")
    first = len(tokenizer)
    tokenizer.add_tokens(tokens, special_tokens=False)
    ids = tokenizer.convert_tokens_to_ids([tokens[0], tokens[-1]])
    if ids != [first, first + len(tokens) - 1]:
        raise RuntimeError(f"itemic tokens did not get consecutive ids from {first}: {ids}")
    return Expansion(fmt, first, first + len(tokens) - 1, padded(len(tokenizer)))


def itemic_ids(tokenizer: Any, fmt: sid.SidFormat) -> list[int]:
    """Ids of every itemic token of ``fmt`` in ``tokenizer`` (codes then delimiters)."""
    ids = tokenizer.convert_tokens_to_ids(fmt.itemic_tokens())
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise ValueError(f"tokenizer lacks itemic tokens of {fmt}")
    return ids


def padded(n: int, multiple: int = PAD_MULTIPLE) -> int:
    return (n + multiple - 1) // multiple * multiple


def expand(model: Any, tokenizer: Any, fmt: sid.SidFormat, init: str = "mean",
           item_texts: Mapping[Sequence[int], str] | None = None) -> Expansion:
    """Add the itemic tokens to ``tokenizer`` and resize ``model``'s embeddings (and head) to match.

    ``init="text"`` needs ``item_texts`` (item codes -> item text, e.g. the captions); code tokens
    no item uses keep the mean initialisation.
    """
    if init not in INIT_CHOICES:
        raise ValueError(f"unknown init {init!r}; choose one of {INIT_CHOICES}")
    if init == "text" and not item_texts:
        raise ValueError("init='text' needs item_texts (item codes -> text)")
    expansion = add_itemic_tokens(tokenizer, fmt)
    model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=PAD_MULTIPLE, mean_resizing=init != "random")
    if init == "text":
        _init_from_text(model, tokenizer, fmt, expansion, item_texts or {})
    return expansion


def _init_from_text(model: Any, tokenizer: Any, fmt: sid.SidFormat, expansion: Expansion,
                    item_texts: Mapping[Sequence[int], str]) -> None:
    import torch

    matrices = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not matrices[0]:
        matrices.append(head.weight)
    sums = [torch.zeros(fmt.levels * fmt.codebook_size, m.shape[1], dtype=torch.float64) for m in matrices]
    counts = torch.zeros(fmt.levels * fmt.codebook_size, dtype=torch.float64)
    with torch.no_grad():
        for codes, text in item_texts.items():
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if not ids:
                continue
            rows = [level * fmt.codebook_size + int(code) for level, code in enumerate(codes)]
            counts[rows] += 1
            for total, matrix in zip(sums, matrices):
                total[rows] += matrix[ids].double().mean(0)
        used = counts > 0
        targets = torch.arange(expansion.first_id, expansion.first_id + len(counts))[used]
        for total, matrix in zip(sums, matrices):
            matrix[targets] = (total[used] / counts[used, None]).to(matrix.dtype)


def find_itemic_ids(tokenizer: Any) -> list[int]:
    """Ids of every itemic token a tokenizer holds, whatever its format (codes and delimiters), sorted."""
    ids = [i for token, i in tokenizer.get_vocab().items()
           if sid.CODE_TOKEN.fullmatch(token) or token in (sid.SID_BEGIN, sid.SID_END)]
    if not ids:
        raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')} has no itemic tokens")
    return sorted(ids)
