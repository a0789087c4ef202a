"""OneRec-V2's lazy decoder-only generative recommender, trained on item SIDs from user histories.

A standard decoder-only recommender runs the user's whole context (hundreds of history tokens)
through every layer's Q/K/V/O projections and FFN just to write a 3-token SID.  The lazy decoder
spends almost nothing on the context:

* **Context processor.**  The user features -- the history items (each the sum of its SID codes'
  embeddings plus a recency embedding) and a user token (the history-length bucket, the one user
  feature every prompt carries) -- go through one RMSNorm + linear map that directly yields the
  keys and values of every layer: ``kv_groups`` K/V sets, each shared by ``layers / kv_groups``
  consecutive layers, ``kv_heads`` heads each (GQA: every K/V head serves ``heads / kv_heads``
  query heads), RMS-normalised.
* **Lazy decoder stack.**  Only the target tokens (BOS, then the codes written so far) pass the
  blocks: cross-attention to the shared context K/V (a query and an output projection, *no* K/V
  projection), causal self-attention over the target tokens, FFN; pre-RMSNorm residuals.  The
  position-``l`` output scores level ``l``'s codebook through the code embeddings (tied).
* **Decoding.**  Beam search constrained by the catalogue's trie
  (:class:`~recif_bench.models.trie.SidTrie`): every returned SID is an item.

``trainers/lazy_decoder.py`` trains it (``recif-train lazy-decoder``);
``recif-eval --model lazy_decoder --model-args checkpoint=<output_dir>`` scores a checkpoint.

**Compute per request** (:func:`request_flops`; ``benchmarks/lazy_decoder_flops.py`` prints the
table): matrix-multiply FLOPs (2 per multiply-add, what ``torch.utils.flop_counter`` counts) of one
teacher-forced pass over a context of ``n`` history items + 1 user token (``N = n + 1``) and the
``T = levels`` target tokens, width ``d``, ``L`` layers, ``H`` query heads of ``h = d / H``, ``G``
K/V heads, ``c = kv_groups``, FFN width ``F``, codebook ``K``::

    lazy  context = 2 N d (2 c G h)                                    # the context processor, once
    lazy  target  = L T [2 d d + 4 N d + 2 d d                         # cross-attn: Q, scores + AV, O
                         + 2 d (d + 2 G h) + 4 T d + 2 d d             # self-attn: QKV, scores + AV, O
                         + 4 d F] + 2 T d K                            # FFN; output logits
    dense rows(r) = L r [2 d (d + 2 G h) + 4 S d + 2 d d + 4 d F],  S = N + T
    dense context = rows(N),  dense target = rows(T) + 2 T d K

The standard model (:class:`DenseDecoderOnly`) has the same tokens, width, layers, heads and FFN;
a context token costs it ``L [2 d (2 d + 2 G h) + 4 S d + 4 d F]``, the lazy decoder ``4 c G h d`` (plus
``4 L T d`` of cross-attention scores and values, counted with the target).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Hashable, Sequence

import torch
from torch import nn

from recif_bench import sid
from recif_bench.models.trie import SidTrie
from recif_bench.recommenders.base import SidRecommender
from recif_bench.recommenders.checkpoint import load_checkpoint, save_atomic
from recif_bench.recommenders.settings import ConfigError, settings

KIND = "lazy_decoder"
ACTIVITY_BUCKETS = 8        # user token: floor(log2(history length + 1)), capped


@dataclass
class LazyDecoderConfig:
    """Model and optimiser settings (a small V2-style stack: 4 lazy blocks, 8 query heads over 2 K/V heads)."""

    d_model: int = 128
    layers: int = 4
    heads: int = 8
    kv_heads: int = 2
    kv_groups: int = 1          # distinct context K/V sets; 1 = every layer reads the same K/V
    d_ff: int = 512
    dropout: float = 0.1
    max_history: int = 50
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 256
    epochs: int = 30
    beams: int = 32
    valid_users: int = 500
    eval_every: int = 2
    patience: int = 3
    seed: int = 42

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "LazyDecoderConfig":
        config = settings(cls, values)
        for whole, part in (("d_model", "heads"), ("heads", "kv_heads"), ("layers", "kv_groups")):
            a, b = getattr(config, whole), getattr(config, part)
            if b < 1 or a % b:
                raise ConfigError(f"model.{whole} ({a}) must be divisible by model.{part} ({b})")
        return config

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads



# ----------------------------------------------------------------------------------------------- blocks

def split_heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, T, n h) -> (B, n, T, h)."""
    return x.view(x.shape[0], x.shape[1], n, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, n, T, h) -> (B, T, n h)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(h)) v over (B, H, Tq, h) queries and (B, G, Tk, h) keys / values (GQA: each K/V head
    serves H / G query heads); ``mask`` is True where a query may look.  Explicit matmuls, not SDPA, because
    the FLOP counter does not see CPU SDPA."""
    repeat = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(repeat, 1), v.repeat_interleave(repeat, 1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v


class SelfAttention(nn.Module):
    """Causal self-attention with its own Q, K/V (GQA) and output projections."""

    def __init__(self, config: LazyDecoderConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads = config.heads, config.kv_heads
        self.q = nn.Linear(config.d_model, config.d_model, bias=False)
        self.kv = nn.Linear(config.d_model, 2 * config.kv_heads * config.head_dim, bias=False)
        self.o = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        k, v = split_heads(self.kv(x), 2 * self.kv_heads).chunk(2, dim=1)
        return self.o(merge_heads(attend(split_heads(self.q(x), self.heads), k, v, mask)))


class LazyCrossAttention(nn.Module):
    """Cross-attention to the context processor's K/V as they are: a query and an output projection only."""

    def __init__(self, config: LazyDecoderConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.q = nn.Linear(config.d_model, config.d_model, bias=False)
        self.o = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        return self.o(merge_heads(attend(split_heads(self.q(x), self.heads), k, v, key_mask)))


def feed_forward(config: LazyDecoderConfig) -> nn.Module:
    return nn.Sequential(nn.Linear(config.d_model, config.d_ff, bias=False), nn.GELU(),
                         nn.Linear(config.d_ff, config.d_model, bias=False))


class LazyBlock(nn.Module):
    """Cross-attention to the shared context K/V, causal self-attention, FFN (pre-RMSNorm residuals)."""

    def __init__(self, config: LazyDecoderConfig) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.RMSNorm(config.d_model) for _ in range(3))
        self.cross, self.self_attn, self.ffn = LazyCrossAttention(config), SelfAttention(config), feed_forward(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], key_mask: torch.Tensor,
                causal: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.cross(self.norms[0](x), *kv, key_mask))
        x = x + self.drop(self.self_attn(self.norms[1](x), causal))
        return x + self.drop(self.ffn(self.norms[2](x)))


class DenseBlock(nn.Module):
    """A standard decoder block (causal self-attention with K/V projections, FFN) for the FLOPs comparison."""

    def __init__(self, config: LazyDecoderConfig) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.RMSNorm(config.d_model) for _ in range(2))
        self.self_attn, self.ffn = SelfAttention(config), feed_forward(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norms[0](x), mask)
        return x + self.ffn(self.norms[1](x))


class SidTokens(nn.Module):
    """Token embeddings both architectures read: history items (sum of code embeddings + recency), the user
    token (history-length bucket), the target (BOS, then the codes written so far); tied output logits."""

    def __init__(self, fmt: sid.SidFormat, config: LazyDecoderConfig) -> None:
        super().__init__()
        self.levels, self.codebook = fmt.levels, fmt.codebook_size
        self.codes = nn.Embedding(fmt.levels * fmt.codebook_size, config.d_model)
        self.recency = nn.Embedding(config.max_history, config.d_model)
        self.activity = nn.Embedding(ACTIVITY_BUCKETS, config.d_model)
        self.target_pos = nn.Embedding(fmt.levels, config.d_model)
        self.bos = nn.Parameter(torch.zeros(config.d_model))
        for weight in (self.codes.weight, self.recency.weight, self.activity.weight, self.target_pos.weight, self.bos):
            nn.init.normal_(weight, std=0.02)
        self.register_buffer("offsets", torch.arange(fmt.levels) * fmt.codebook_size, persistent=False)

    def context(self, history: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n, levels) left-padded codes + (B, n) mask -> (B, 1 + n, d) tokens and their mask (user token first)."""
        n = history.shape[1]
        items = self.codes(history + self.offsets).sum(2) + self.recency(torch.arange(n - 1, -1, -1))
        bucket = torch.log2(mask.sum(1).float() + 1).long().clamp(max=ACTIVITY_BUCKETS - 1)
        tokens = torch.cat([self.activity(bucket)[:, None], items * mask[..., None]], 1)
        return tokens, torch.cat([torch.ones(mask.shape[0], 1, dtype=torch.bool), mask], 1)

    def target(self, prefix: torch.Tensor) -> torch.Tensor:
        """(B, t) codes of levels 0..t-1 -> (B, t + 1, d): BOS then those codes, plus target positions."""
        t = prefix.shape[1]
        x = torch.cat([self.bos.expand(prefix.shape[0], 1, -1), self.codes(prefix + self.offsets[:t])], 1)
        return x + self.target_pos.weight[:t + 1]

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """(B, t, d) -> (B, t, codebook): position l scores level l's codes."""
        weight = self.codes.weight.view(self.levels, self.codebook, -1)[:states.shape[1]]
        return torch.einsum("btd,tkd->btk", states, weight)


class ContextProcessor(nn.Module):
    """Context tokens -> ``kv_groups`` (K, V) pairs of (B, kv_heads, N, h): the only projection of the context."""

    def __init__(self, config: LazyDecoderConfig) -> None:
        super().__init__()
        self.groups, self.kv_heads = config.kv_groups, config.kv_heads
        self.norm = nn.RMSNorm(config.d_model)
        self.proj = nn.Linear(config.d_model, config.kv_groups * 2 * config.kv_heads * config.head_dim, bias=False)
        self.kv_norms = nn.ModuleList(nn.RMSNorm(config.head_dim) for _ in range(2 * config.kv_groups))

    def forward(self, tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        b, n, _ = tokens.shape
        kv = self.proj(self.norm(tokens)).view(b, n, 2 * self.groups, self.kv_heads, -1).permute(2, 0, 3, 1, 4)
        kv = [norm(part) for norm, part in zip(self.kv_norms, kv)]
        return [(kv[2 * g], kv[2 * g + 1]) for g in range(self.groups)]


Context = tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]     # per-group (K, V), key mask (B,1,1,N)


class LazyDecoder(nn.Module):
    """Context processor + lazy decoder stack; ``forward`` gives teacher-forced logits (B, levels, codebook)."""

    def __init__(self, fmt: sid.SidFormat, config: LazyDecoderConfig) -> None:
        super().__init__()
        self.config, self.fmt = config, fmt
        self.tokens, self.context = SidTokens(fmt, config), ContextProcessor(config)
        self.blocks = nn.ModuleList(LazyBlock(config) for _ in range(config.layers))
        self.norm = nn.RMSNorm(config.d_model)

    def encode(self, history: torch.Tensor, mask: torch.Tensor) -> Context:
        tokens, key_mask = self.tokens.context(history, mask)
        return self.context(tokens), key_mask[:, None, None, :]

    def decode(self, context: Context, prefix: torch.Tensor) -> torch.Tensor:
        """Logits (B, t + 1, codebook) after BOS and the (B, t) codes written so far."""
        kvs, key_mask = context
        x = self.tokens.target(prefix)
        causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril()
        share = len(self.blocks) // len(kvs)
        for i, block in enumerate(self.blocks):
            x = block(x, kvs[i // share], key_mask, causal)
        return self.tokens.logits(self.norm(x))

    def forward(self, history: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(history, mask), target[:, :-1])


class DenseDecoderOnly(nn.Module):
    """The standard decoder-only model of the same size: context tokens and the target in one causal sequence,
    every token through every layer.  Only built to count its FLOPs next to the lazy decoder's."""

    def __init__(self, fmt: sid.SidFormat, config: LazyDecoderConfig) -> None:
        super().__init__()
        self.tokens = SidTokens(fmt, config)
        self.blocks = nn.ModuleList(DenseBlock(config) for _ in range(config.layers))
        self.norm = nn.RMSNorm(config.d_model)

    def forward(self, history: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        context, key_mask = self.tokens.context(history, mask)
        x = torch.cat([context, self.tokens.target(target[:, :-1])], 1)
        n, s = context.shape[1], x.shape[1]
        keys = torch.cat([key_mask, torch.ones(x.shape[0], s - n, dtype=torch.bool)], 1)
        mask = torch.ones(s, s, dtype=torch.bool).tril() & keys[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask)
        return self.tokens.logits(self.norm(x[:, n:]))


def expand(context: Context, n: int) -> Context:
    """Each row's context repeated for its ``n`` beams (computed once per user, as the architecture intends)."""
    kvs, key_mask = context
    return [(k.repeat_interleave(n, 0), v.repeat_interleave(n, 0)) for k, v in kvs], key_mask.repeat_interleave(n, 0)


@torch.no_grad()
def beam_search(network: LazyDecoder, trie: SidTrie, history: torch.Tensor, mask: torch.Tensor,
                beams: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``beams`` most likely SIDs per row, every one a path of ``trie`` (whose token ids are the codes):
    codes (B, beams, levels) and summed log-probabilities (-inf where the catalogue has fewer SIDs than beams)."""
    network.eval()
    rows, codebook = history.shape[0], network.fmt.codebook_size
    context = network.encode(history, mask)
    prefix, scores = torch.zeros(rows, 1, 0, dtype=torch.long), torch.zeros(rows, 1)
    for level in range(network.fmt.levels):
        width = prefix.shape[1]
        logp = network.decode(expand(context, width), prefix.reshape(rows * width, level))[:, -1].log_softmax(-1)
        legal = torch.zeros(rows, width, codebook, dtype=torch.bool)
        for row in range(rows):
            for beam in range(width):
                legal[row, beam, trie.allowed(tuple(prefix[row, beam].tolist()))] = True
        total = (scores[..., None] + logp.view(rows, width, codebook)).masked_fill(~legal, float("-inf"))
        scores, index = total.view(rows, -1).topk(min(beams, width * codebook), dim=1)
        parent = (index // codebook)[..., None].expand(-1, -1, level)
        prefix = torch.cat([prefix.gather(1, parent), (index % codebook)[..., None]], 2)
    return prefix, scores



# -------------------------------------------------------------------------------------------- recommender

class LazyDecoderModel(SidRecommender):
    """The network, the item <-> SID table and its trie: what training, evaluation and ``recif-rec`` share."""

    def __init__(self, network: LazyDecoder, codes: dict[Hashable, tuple[int, ...]], meta: dict[str, Any]) -> None:
        super().__init__(codes, network.fmt, meta, network.config.max_history)
        self.network, self.config = network, network.config
        token_ids = {sid.code_token(level, x): x for c in self.items_by_sid for level, x in enumerate(c)}
        self.trie = SidTrie(list(self.items_by_sid), token_ids, self.fmt, [])     # token ids = the codes

    @classmethod
    def new(cls, codes: dict[Hashable, tuple[int, ...]], fmt: sid.SidFormat, config: LazyDecoderConfig,
            meta: dict[str, Any]) -> "LazyDecoderModel":
        torch.manual_seed(config.seed)
        return cls(LazyDecoder(fmt, config), codes, meta)

    def encode_histories(self, histories: Sequence[Sequence[Hashable]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded codes (B, n, levels) of the last ``max_history`` known items, and their mask."""
        known = [[self.codes[i] for i in h if i in self.codes][-self.max_history:] for h in histories]
        width = max((len(k) for k in known), default=0)
        codes = torch.zeros(len(known), width, self.fmt.levels, dtype=torch.long)
        mask = torch.zeros(len(known), width, dtype=torch.bool)
        for row, items in enumerate(known):
            if items:
                codes[row, width - len(items):], mask[row, width - len(items):] = torch.tensor(items), True
        return codes, mask

    def targets(self, items: Sequence[Hashable]) -> torch.Tensor:
        return torch.tensor([self.codes[i] for i in items], dtype=torch.long).view(len(items), self.fmt.levels)

    def generate(self, histories: Sequence[Sequence[Hashable]], k: int) -> list[list[Hashable]]:
        """Top-k catalogue items per history by trie-constrained beam search (``max(k, beams)`` beams)."""
        codes, scores = beam_search(self.network, self.trie, *self.encode_histories(histories), max(k, self.config.beams))
        return [[self.items_by_sid[tuple(c)] for c, s in zip(codes[row].tolist(), scores[row].tolist())
                 if s > float("-inf")][:k] for row in range(len(histories))]

    @torch.no_grad()
    def sid_log_prob(self, history: list[Hashable], item: Hashable) -> float:
        self.network.eval()
        target = self.targets([item])
        logp = self.network(*self.encode_histories([history]), target).log_softmax(-1)
        return float(logp[0].gather(1, target[0, :, None]).sum())

    def save(self, path: Path, extra: dict[str, Any] | None = None) -> Path:
        """Atomic ``.pt``: settings, SID format, item codes, weights, meta and whatever the run adds."""
        return save_atomic({"kind": KIND, "config": asdict(self.config), "levels": self.fmt.levels,
                            "codebook_size": self.fmt.codebook_size, "codes": self.codes, "meta": self.meta,
                            "state": self.network.state_dict(), **(extra or {})}, path)

    @classmethod
    def load(cls, path: str | Path) -> "LazyDecoderModel":
        """A checkpoint file, or a run folder (its ``best.pt``); errors name the file."""
        return cls.from_checkpoint(read_checkpoint(path))

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> "LazyDecoderModel":
        network = LazyDecoder(sid.SidFormat(ckpt["levels"], ckpt["codebook_size"]), LazyDecoderConfig(**ckpt["config"]))
        network.load_state_dict(ckpt["state"])
        return cls(network.eval(), ckpt["codes"], ckpt["meta"])


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    return load_checkpoint(path, KIND, "best.pt", "lazy decoder checkpoint")[1]



# ------------------------------------------------------------------------------------------------ compute

def request_flops(config: LazyDecoderConfig, fmt: sid.SidFormat, history: int) -> dict[str, int]:
    """Analytic matmul FLOPs of one request (the module docstring's formula): context / target parts of the lazy
    decoder and of the same-size standard decoder-only model, for ``history`` context items."""
    d, layers, f, h = config.d_model, config.layers, config.d_ff, config.head_dim
    kv = 2 * config.kv_heads * h
    n, t = history + 1, fmt.levels
    head = 2 * t * d * fmt.codebook_size
    cross = 2 * d * d + 4 * n * d + 2 * d * d
    self_attn = 2 * d * (d + kv) + 4 * t * d + 2 * d * d
    s = n + t

    def dense_rows(r: int) -> int:
        return layers * r * (2 * d * (d + kv) + 4 * s * d + 2 * d * d + 4 * d * f)

    return {"lazy_context": 2 * n * d * config.kv_groups * kv,
            "lazy_target": layers * t * (cross + self_attn + 4 * d * f) + head,
            "dense_context": dense_rows(n), "dense_target": dense_rows(t) + head}


def measured_flops(network: nn.Module, history: int) -> int:
    """FLOPs ``torch.utils.flop_counter`` counts for one teacher-forced request with ``history`` context items."""
    from torch.utils.flop_counter import FlopCounterMode

    levels = network.tokens.levels
    codes = torch.zeros(1, history, levels, dtype=torch.long)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network.eval()(codes, torch.ones(1, history, dtype=torch.bool), torch.zeros(1, levels, dtype=torch.long))
    return counter.get_total_flops()

