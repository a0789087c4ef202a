"""Policy losses of the OneRec family, as pure functions of per-token log-probabilities.

Every loss takes ``logp`` (the current policy's log-probabilities of the sampled tokens, with
gradient), ``old_logp`` (the rollout policy's, no gradient), ``advantages`` (one per sequence,
``(B,)``, or per token, ``(B, T)``) and ``mask`` (1 on completion tokens), and returns the
token-mean loss over the masked tokens.  Probabilities are per token, as trl's token-level
importance sampling (the seeds write them per item; an item here is its SID tokens).

* :func:`grpo_loss`: the PPO clipped surrogate with clip range ``[1 - eps_low, 1 + eps_high]``.
  For a negative advantage nothing caps the ratio from above, so a sample whose probability
  grew a lot since the rollout gets a gradient that grows with the ratio.
* :func:`ecpo_loss` (OneRec-V1, "early-clipped GRPO"): for negative-advantage tokens the old
  probability is first raised to ``max(sg(pi) / (1 + eps_high + delta), pi_old)``, so the ratio
  is at most ``1 + eps_high + delta`` before the usual clipped surrogate.
* :func:`gbpo_loss` (OneRec-V2, gradient-bounded): no clipping; the ratio's denominator is
  ``max(pi_old, sg(pi))`` for ``A >= 0`` and ``max(pi_old, 1 - sg(pi))`` for ``A < 0``.  With
  respect to the logits the gradient is then at most ``|A|`` times that of BCE on the token
  (``1 - pi`` for positives, ``pi`` for negatives), whatever ``pi_old`` is.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

PolicyLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token mean over the masked positions (0 when there are none)."""
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def _per_token(advantages: torch.Tensor) -> torch.Tensor:
    return advantages.unsqueeze(1) if advantages.dim() == 1 else advantages


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              eps_low: float = 0.2, eps_high: float = 0.28) -> torch.Tensor:
    """``-min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)`` with ``r = pi / pi_old``, token-mean."""
    adv = _per_token(advantages)
    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    return masked_mean(-torch.min(ratio * adv, clipped * adv), mask)


def ecpo_old_logp(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                  eps_high: float, delta: float) -> torch.Tensor:
    """ECPO's old-policy log-probability: ``log max(sg(pi) / (1 + eps_high + delta), pi_old)`` where
    the advantage is negative, ``log pi_old`` elsewhere."""
    if delta <= 0:
        raise ValueError(f"ECPO needs delta > 0, got {delta}")
    adv = _per_token(advantages).expand_as(logp)
    early = torch.maximum(logp.detach() - math.log(1 + eps_high + delta), old_logp)
    return torch.where(adv < 0, early, old_logp)


def ecpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              eps_low: float = 0.2, eps_high: float = 0.28, delta: float = 0.1) -> torch.Tensor:
    """GRPO's clipped surrogate on ECPO's early-clipped old policy."""
    return grpo_loss(logp, ecpo_old_logp(logp, old_logp, advantages, eps_high, delta), advantages, mask,
                     eps_low, eps_high)


def gbpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor) -> torch.Tensor:
    """``-(pi / pi_old') A`` without clipping, ``pi_old'`` the gradient-bounding denominator above."""
    adv = _per_token(advantages).expand_as(logp)
    current = logp.detach()
    log_not = torch.log(-torch.expm1(current))          # log(1 - sg(pi)), -inf at pi = 1
    denominator = torch.where(adv >= 0, torch.maximum(old_logp, current), torch.maximum(old_logp, log_not))
    return masked_mean(-torch.exp(logp - denominator) * adv, mask)


LOSS_KINDS = ("grpo", "ecpo", "gbpo")
