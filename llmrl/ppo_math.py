"""The tensor arithmetic of PPO for language models, kept apart from the training loop so it can be tested
against plain reference implementations. Every function takes a ``mask`` (1 on response tokens, 0 on padding)
and ignores the masked-out positions.
"""

from __future__ import annotations

from llmrl.lazy import lazy_import

torch = lazy_import("torch")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    count = mask.sum()
    if unbiased and count > 1:
        variance = variance * count / (count - 1)
    return variance


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Scale to unit variance over the masked positions (and centre on zero when ``shift_mean``)."""
    mean, variance = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(variance + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalized advantage estimation over response tokens: (advantages, returns), shape (batch, tokens).

    Positions after a sequence's last response token contribute nothing: their values and rewards are masked
    to zero, so the recursion restarts at each sequence's end.
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], device=rewards.device, dtype=rewards.dtype)
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    advantages = advantages * mask
    return advantages, advantages + values


def policy_loss(new_logprobs, old_logprobs, advantages, mask, clip_range: float):
    """Clipped surrogate loss, and the statistics PPO reports about the ratio."""
    log_ratio = (new_logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    stats = {
        "ratio": masked_mean(ratio, mask),
        "clipfrac": masked_mean((clipped > unclipped).float(), mask),
        "approxkl": 0.5 * masked_mean(log_ratio**2, mask),
    }
    return loss, stats


def value_loss(new_values, old_values, returns, mask, clip_range: float):
    """Clipped value loss (the larger of the clipped and unclipped squared errors), and its clip fraction."""
    clipped_values = old_values + torch.clamp(new_values - old_values, -clip_range, clip_range)
    unclipped_error = (new_values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_error, clipped_error), mask)
    return loss, {"vf_clipfrac": masked_mean((clipped_error > unclipped_error).float(), mask)}


def entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Per-token entropy of the categorical distributions given by their log-probabilities (..., vocab)."""
    return -(log_probs.exp() * log_probs).sum(-1)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - Var(returns - values) / Var(returns): how much of the return the value model predicts."""
    return 1 - masked_var(returns - values, mask) / masked_var(returns, mask).clamp(min=1e-8)
