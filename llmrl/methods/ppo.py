"""Proximal Policy Optimization for language models, llmrl's own (TRL removed its PPOTrainer in 1.13).

The classic RLHF recipe, following the published implementation details of RLHF with PPO:

1. Rollout: sample one completion per prompt from the policy (transformers' generate with KV cache), cut it
   after the first end token, and score it with the reward functions (a reward model, a rule, an API ...).
   A completion that never ends loses ``rl.missing_eos_penalty``.
2. Rewards: the score on the last response token, minus a per-token KL penalty ``beta * (logp - logp_ref)``
   against the frozen starting policy (with LoRA: the policy with its adapters off).
3. Advantages: GAE (``ppo.gamma``, ``ppo.lam``) over response tokens with a value model (a scalar head on a
   transformer, initialised from the reward model when ``rewards`` names one, else from the policy), whitened.
4. Updates: ``ppo.ppo_epochs`` passes over shuffled minibatches: clipped ratio loss, clipped value loss,
   optional entropy bonus, gradient clipping. Prompt and padding tokens are masked everywhere.

Writes the policy to ``final/`` (loads with ``AutoModelForCausalLM``) and the value model to ``value_model/``;
every ``save_steps`` rollout steps (and on SIGTERM/SIGINT) a ``checkpoint-N/`` that ``--resume`` continues from.

    llmrl train --method ppo --model runs/sft/final --dataset builtin:prompts --set rewards=[reward_model:runs/rm/final]
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import random
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from llmrl import ppo_math
from llmrl.console import Progress
from llmrl.data import prepare_train_eval
from llmrl.errors import LlmrlError, redact_secrets
from llmrl.generation import encode_prompts, task_eval
from llmrl.hardware import detect_hardware
from llmrl.held_out import HeldOutWatch
from llmrl.lazy import lazy_import
from llmrl.loading import fp32_trainable_weights, load_model, load_tokenizer, peft_config
from llmrl.options import check, option
from llmrl.outputs import PPO_STATE, complete_checkpoints, save_whole
from llmrl.reward_specs import parse_spec
from llmrl.run_context import NonFiniteGuard, RunContext, ShardRecord, write_ranks_file
from llmrl.trl_args import online_rewards

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig

torch = lazy_import("torch")
transformers = lazy_import("transformers")
logger = logging.getLogger("llmrl")
details = logging.getLogger("llmrl.details")  # the run log only
REPLACES_RL = {  # rl.* options PPO does not read, and what it reads instead
    "beta": "set ppo.kl_coef",
    "num_generations": "PPO samples one answer per prompt (per_device_train_batch_size prompts per rollout)",
    "num_iterations": "set ppo.ppo_epochs",
    "use_vllm": "PPO generates with transformers",
    "vllm_mode": "PPO generates with transformers",
    "vllm_server_base_url": "PPO generates with transformers",
}


@dataclass
class PPOOptions:
    """Options of PPO (``--method ppo``); sampling and the clip range are under ``rl``."""

    ppo_epochs: int = option(4, "optimization passes over each rollout batch")
    num_mini_batches: int = option(1, "optimizer steps per pass (the rollout batch is split into this many)")
    gamma: float = option(1.0, "discount over response tokens")
    lam: float = option(0.95, "GAE lambda")
    cliprange_value: float = option(0.2, "clip range of the value predictions")
    vf_coef: float = option(0.1, "weight of the value loss")
    entropy_coef: float = option(0.0, "entropy bonus")
    whiten_rewards: bool = option(False, "whiten the per-token rewards before GAE")
    kl_coef: float = option(0.05, "beta of the per-token KL penalty towards the reference (PPO's one name for it)")
    value_learning_rate: float | None = option(None, "the value model's learning rate (None: learning_rate)")

    def __post_init__(self):
        check(self.ppo_epochs > 0, "ppo.ppo_epochs", self.ppo_epochs, "> 0")
        check(self.num_mini_batches > 0, "ppo.num_mini_batches", self.num_mini_batches, "> 0")
        check(0 < self.gamma <= 1, "ppo.gamma", self.gamma, "in (0, 1]")
        check(0 <= self.lam <= 1, "ppo.lam", self.lam, "in [0, 1]")
        check(self.cliprange_value > 0, "ppo.cliprange_value", self.cliprange_value, "> 0")
        check(self.vf_coef >= 0, "ppo.vf_coef", self.vf_coef, ">= 0")
        check(self.entropy_coef >= 0, "ppo.entropy_coef", self.entropy_coef, ">= 0")
        check(self.kl_coef >= 0, "ppo.kl_coef", self.kl_coef, ">= 0")
        lr = self.value_learning_rate
        check(lr is None or lr > 0, "ppo.value_learning_rate", lr, "> 0 or null")


def check_config(cfg: TrainingConfig) -> None:
    """The ``rl`` options PPO does not read are refused (naming what it reads instead), not ignored."""
    defaults = type(cfg.rl)()
    for name, instead in REPLACES_RL.items():
        if getattr(cfg.rl, name) != getattr(defaults, name):
            raise LlmrlError(f"rl.{name} does not apply to --method ppo: {instead}")


def build_trainer(cfg: TrainingConfig) -> PPOTrainer:
    if not cfg.rewards:
        raise LlmrlError("--method ppo needs rewards: e.g. --set rewards=[reward_model:runs/rm/final]")
    for engine in ("DEEPSPEED", "FSDP"):  # set by accelerate launch; PPO prepares two models and generates
        if os.environ.get(f"ACCELERATE_USE_{engine}", "false").lower() in ("1", "true"):
            raise LlmrlError(
                f"--method ppo runs under data parallel, not {engine.lower()}: launch it with --num-processes N "
                "or configs/accelerate/multi_gpu.yaml"
            )
    tokenizer = load_tokenizer(cfg)
    dataset, eval_dataset, _ = prepare_train_eval(cfg, tokenizer, "prompt")
    return PPOTrainer(cfg, tokenizer, dataset, eval_dataset)


@dataclass
class Rollout:
    """One batch of sampled completions with everything the PPO updates need, shape (batch, response tokens)."""

    query_ids: torch.Tensor  # left-padded prompts
    query_mask: torch.Tensor
    response_ids: torch.Tensor  # right-padded completions, cut after the first end token
    response_mask: torch.Tensor  # 1 on response tokens (the end token included), 0 on padding
    logprobs: torch.Tensor  # of the policy that sampled them
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    stats: dict


class PPOTrainer:
    """The PPO loop: rollouts, GAE, clipped updates of policy and value model, metrics, saving."""

    def __init__(self, cfg: TrainingConfig, tokenizer, dataset, eval_dataset=None):
        from accelerate import Accelerator
        from accelerate.utils import GradientAccumulationPlugin

        hardware = detect_hardware(cfg)
        self.cfg, self.tokenizer = cfg, tokenizer
        self.output_dir = Path(cfg.output_dir)
        self.step = 0  # rollout steps done
        self.beta = cfg.ppo.kl_coef
        self.guard = NonFiniteGuard(cfg.on_nonfinite, self.output_dir)  # the run's, once train(run) starts
        self.accelerator = Accelerator(
            cpu=hardware.device == "cpu",
            mixed_precision={"bf16": "bf16", "fp16": "fp16"}.get(hardware.precision, "no"),
            # minibatches come from rollouts, not from the prompt loader: its end must not force a step
            gradient_accumulation_plugin=GradientAccumulationPlugin(
                num_steps=cfg.gradient_accumulation_steps, sync_with_dataloader=False
            ),
        )
        torch.manual_seed(cfg.seed)
        self._setup_models(hardware.gradient_checkpointing)
        # transformers' causal LMs compute the LM head on the last N positions only when told (remote code may not)
        base = self.policy.get_base_model() if hasattr(self.policy, "get_base_model") else self.policy  # (LoRA)
        self.keeps_logits = "logits_to_keep" in inspect.signature(base.forward).parameters
        self.reward_funcs, self.reward_weights = online_rewards(cfg, tokenizer)
        self.task_eval = task_eval(cfg, eval_dataset, tokenizer, self.reward_funcs, self.reward_weights)
        loader = self._setup_data(dataset)
        self._setup_optimizer(len(loader))
        # the scheduler stays out of accelerator.prepare, which would step it once per process per call
        self.policy, self.value_model, self.optimizer, self.loader = self.accelerator.prepare(
            self.policy, self.value_model, self.optimizer, loader
        )
        if self.reference is not None:
            self.reference = self.reference.to(self.accelerator.device)
        logger.info(
            "PPO: %d rollout steps of %d prompts per process, %d epochs x %d minibatches each, beta %.3g",
            self.total_steps,
            self.rollout_batch_size,
            cfg.ppo.ppo_epochs,
            cfg.ppo.num_mini_batches,
            self.beta,
        )

    def _setup_models(self, gradient_checkpointing: bool) -> None:
        """The policy, the value model (from the reward model when there is one) and the frozen reference
        (with LoRA: the policy with its adapters off)."""
        cfg, tokenizer = self.cfg, self.tokenizer
        self.policy = load_model(cfg, tokenizer)
        value_source = next((arg for kind, arg in map(parse_spec, cfg.rewards) if kind == "reward_model"), None)
        self.value_model = self.load_value_model(value_source)
        self.reference = None
        if cfg.lora.enabled:
            from peft import get_peft_model

            self.policy = get_peft_model(self.policy, peft_config(cfg))
            self.value_model = get_peft_model(self.value_model, peft_config(cfg, task_type="SEQ_CLS"))
        else:
            self.reference = load_model(cfg, tokenizer, frozen=True).eval().requires_grad_(False)
        for model in (self.policy, self.value_model):
            fp32_trainable_weights(model)  # peft's copy of the value head is in the frozen base's dtype
            disable_dropout(model)
            if gradient_checkpointing:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def _setup_data(self, dataset):
        """The prompt loader: rollout batches of whole minibatches, shuffled per epoch with the run's seed."""
        cfg = self.cfg
        self.mini_batch_size = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
        self.rollout_batch_size = self.mini_batch_size * cfg.ppo.num_mini_batches
        self.dataset = dataset
        self.shard = ShardRecord(list)  # notes what this process rolled out on, for ranks.json
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=self.rollout_batch_size,
            sampler=EpochShuffle(len(dataset), cfg.seed),
            collate_fn=self.shard,
            drop_last=True,
            # its own generator: starting an epoch would otherwise draw from the global RNG, which --resume restores
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        if len(loader) == 0:
            raise LlmrlError(
                f"PPO needs at least {self.rollout_batch_size} prompts per rollout (per_device_train_batch_size x "
                f"gradient_accumulation_steps x ppo.num_mini_batches); the dataset has {len(dataset)}"
            )
        return loader

    def _setup_optimizer(self, batches_per_epoch: int) -> None:
        """One AdamW over policy and value model (each at its learning rate) and the schedule over the run."""
        cfg = self.cfg
        steps_per_epoch = math.ceil(batches_per_epoch / self.accelerator.num_processes)
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.num_train_epochs * steps_per_epoch))
        learning_rate = cfg.learning_rate if cfg.learning_rate is not None else 3e-6
        value_learning_rate = cfg.ppo.value_learning_rate or learning_rate  # critics usually learn faster
        groups = [
            {"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}
            for model, lr in ((self.policy, learning_rate), (self.value_model, value_learning_rate))
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=learning_rate, weight_decay=cfg.weight_decay, eps=1e-5)
        self.scheduler = transformers.get_scheduler(
            cfg.lr_scheduler_type,
            self.optimizer,
            num_warmup_steps=math.ceil(cfg.warmup_ratio * self.total_steps),
            num_training_steps=self.total_steps,
        )

    def load_value_model(self, source: str | None):
        """A transformer with a scalar head: the reward model's when one is given (its score head included),
        else the policy's weights with a new head; loaded as the policy is (attention, Liger, fp32 weights)."""
        model_class = transformers.AutoModelForSequenceClassification
        model = load_model(self.cfg, self.tokenizer, model_class, model=source or self.cfg.model, num_labels=1)
        if not isinstance(getattr(model, "score", None), torch.nn.Linear):
            raise LlmrlError(f"{type(model).__name__} has no 'score' head; PPO's value model needs one")
        model.config.pad_token_id = self.tokenizer.pad_token_id
        return model

    # -----------------------------------------------------------------------------------------------------
    # Forward passes

    def response_logprobs(self, model, query_ids, query_mask, response_ids, response_mask, entropy=False):
        """The log-probabilities of the response tokens under ``model``, temperature applied; with ``entropy``,
        (log-probabilities, entropies). The LM head and the softmax run on the response positions only (the
        query is left-padded, the response right-padded: they are the last ones)."""
        input_ids = torch.cat([query_ids, response_ids], dim=1)
        attention_mask = torch.cat([query_mask, response_mask], dim=1)
        position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
        kept = response_ids.shape[1] + 1  # the position before the first response token predicts it
        keep = {"logits_to_keep": kept} if self.keeps_logits else {}
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **keep).logits
        logits = logits[:, -kept:-1].float() / (self.cfg.rl.temperature + 1e-7)
        log_probs = logits.log_softmax(-1)
        logprobs = torch.gather(log_probs, 2, response_ids.unsqueeze(-1)).squeeze(-1)
        return (logprobs, ppo_math.entropy(log_probs)) if entropy else logprobs

    def response_values(self, query_ids, query_mask, response_ids, response_mask):
        """The value model's estimate at each response token (read at the position that predicts it): its score
        head applied to every position's last hidden state, not only the last token's as in a reward model."""
        input_ids = torch.cat([query_ids, response_ids], dim=1)
        attention_mask = torch.cat([query_mask, response_mask], dim=1)
        position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
        outputs = self.value_model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, output_hidden_states=True
        )
        score_head = self.accelerator.unwrap_model(self.value_model).score
        values = score_head(outputs.hidden_states[-1]).squeeze(-1).float()
        return values[:, query_ids.shape[1] - 1 : -1]

    # -----------------------------------------------------------------------------------------------------
    # Rollout

    def rollout(self, rows: list[dict]) -> Rollout:
        """One rollout: sample an answer per prompt, score it, and turn the scores and the KL to the reference
        into per-token rewards, advantages and returns."""
        prompts = [row["prompt"] for row in rows]
        with torch.no_grad():
            query_ids, query_mask, response_ids, response_mask = self.generate(prompts)
            scores = self.score(rows, prompts, response_ids, response_mask)
            sequences = (query_ids, query_mask, response_ids, response_mask)
            logprobs, values, advantages, returns, stats = self.advantages(sequences, scores)
        return Rollout(query_ids, query_mask, response_ids, response_mask, logprobs, values, advantages, returns, stats)

    def generate(self, prompts: list):
        """(query ids, query mask, response ids, response mask): one sampled answer per prompt, cut after its
        first end token (any of the policy's: its eos and the chat template's end of turn)."""
        cfg, tokenizer, device = self.cfg, self.tokenizer, self.accelerator.device
        encoded = {"input_ids": encode_prompts(tokenizer, prompts)}
        query = tokenizer.pad(encoded, return_tensors="pt", padding_side="left")
        query_ids, query_mask = query["input_ids"].to(device), query["attention_mask"].to(device)
        policy = self.accelerator.unwrap_model(self.policy)
        ends = policy.generation_config.eos_token_id  # llmrl.loading wrote every end token there
        policy.eval()
        generated = policy.generate(
            input_ids=query_ids,
            attention_mask=query_mask,
            max_new_tokens=cfg.rl.max_completion_length,
            do_sample=True,
            temperature=cfg.rl.temperature,
            top_p=cfg.rl.top_p,
            top_k=0,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=ends,
            use_cache=True,
        )
        policy.train()
        return (query_ids, query_mask, *cut_after_end(generated[:, query_ids.shape[1] :], ends, tokenizer.pad_token_id))

    def score(self, rows: list[dict], prompts: list, response_ids, response_mask) -> torch.Tensor:
        """The weighted sum of the reward functions for each answer (an unscored answer counts 0)."""
        tokenizer, device = self.tokenizer, self.accelerator.device
        completions = [
            tokenizer.decode(ids[mask.bool()], skip_special_tokens=True)
            for ids, mask in zip(response_ids, response_mask, strict=True)
        ]
        if isinstance(prompts[0], list):
            completions = [[{"role": "assistant", "content": c}] for c in completions]
        columns = {key: [row[key] for row in rows] for key in rows[0] if key != "prompt"}
        completion_ids = [ids[mask.bool()].tolist() for ids, mask in zip(response_ids, response_mask, strict=True)]
        scores = torch.zeros(len(rows), device=device)
        for weight, function in zip(self.reward_weights, self.reward_funcs, strict=True):
            values = function(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
            scores += weight * torch.tensor([math.nan if v is None else v for v in values], device=device)
        return torch.nan_to_num(scores, nan=0.0)

    def advantages(self, sequences: tuple, scores: torch.Tensor):
        """Log-probabilities of policy and reference, values, per-token rewards (score on the last token, minus
        beta x KL on every token), then GAE: (logprobs, values, advantages, returns, stats)."""
        cfg, device = self.cfg, self.accelerator.device
        response_mask = sequences[3]
        logprobs = self.in_micro_batches(partial(self.response_logprobs, self.policy), sequences)
        if self.reference is None:
            with self.accelerator.unwrap_model(self.policy).disable_adapter():
                ref_logprobs = self.in_micro_batches(partial(self.response_logprobs, self.policy), sequences)
        else:
            ref_logprobs = self.in_micro_batches(partial(self.response_logprobs, self.reference), sequences)
        values = self.in_micro_batches(self.response_values, sequences)
        mask = response_mask.float()
        logprobs, ref_logprobs, values = logprobs * mask, ref_logprobs * mask, values * mask

        kl = (logprobs - ref_logprobs) * mask
        rewards = -self.beta * kl
        last = (response_mask.sum(1) - 1).clamp(min=0)
        rewards[torch.arange(len(scores), device=device), last] += scores
        if cfg.ppo.whiten_rewards:
            rewards = ppo_math.masked_whiten(rewards, mask, shift_mean=False)
        advantages, returns = ppo_math.gae(rewards, values, mask, cfg.ppo.gamma, cfg.ppo.lam)
        advantages = ppo_math.masked_whiten(advantages, mask)
        stats = {
            "score": scores.mean(),
            "kl": kl.sum(1).mean(),
            "rlhf_reward": (scores - self.beta * kl.sum(1)).mean(),
            "response_length": mask.sum(1).mean(),
            "explained_variance": ppo_math.explained_variance(values, returns, mask),
        }
        return logprobs, values, advantages, returns, stats

    def in_micro_batches(self, forward, sequences: tuple) -> torch.Tensor:
        """``forward(*rows)`` over the rollout's sequences, ``per_device_train_batch_size`` rows at a time (the
        batch the updates run), concatenated: the rollout's forwards peak at one micro-batch's activations and
        logits, not the whole rollout's."""
        size = self.cfg.per_device_train_batch_size
        rows = sequences[0].shape[0]
        return torch.cat([forward(*(t[start : start + size] for t in sequences)) for start in range(0, rows, size)])

    # -----------------------------------------------------------------------------------------------------
    # Updates

    def update(self, rollout: Rollout) -> list[dict[str, float]]:
        """``ppo.ppo_epochs`` passes over shuffled minibatches; the statistics of every minibatch, in order."""
        cfg, history = self.cfg, []
        size = rollout.query_ids.shape[0]
        micro = cfg.per_device_train_batch_size
        for _ in range(cfg.ppo.ppo_epochs):
            order = torch.randperm(size, device=rollout.query_ids.device)
            for start in range(0, size, self.mini_batch_size):
                batch_stats = []
                for micro_start in range(start, start + self.mini_batch_size, micro):
                    index = order[micro_start : micro_start + micro]
                    with self.accelerator.accumulate(self.policy, self.value_model):
                        loss, stats = self.loss(rollout, index)
                        self.accelerator.backward(loss)
                        parameters = [p for g in self.optimizer.param_groups for p in g["params"]]
                        if self.accelerator.sync_gradients and not self.usable(parameters):
                            self.optimizer.zero_grad(set_to_none=True)  # skipped: AdamW leaves them alone
                        if self.accelerator.sync_gradients and cfg.max_grad_norm:
                            self.accelerator.clip_grad_norm_(parameters, cfg.max_grad_norm)
                        self.optimizer.step()
                        self.optimizer.zero_grad()
                    batch_stats.append(stats)
                history.append({k: sum(s[k] for s in batch_stats) / len(batch_stats) for k in batch_stats[0]})
        return history

    def usable(self, parameters) -> bool:
        """The NaN guard before an optimizer step: False means skip the minibatch (``on_nonfinite=skip``)."""
        return self.guard.usable(parameters, self.step + 1, self.accelerator, unit="minibatch")

    def loss(self, rollout: Rollout, index: torch.Tensor):
        """PPO's loss on the rollout rows ``index``: clipped policy loss + vf_coef * clipped value loss - entropy."""
        cfg = self.cfg
        query_ids, query_mask = rollout.query_ids[index], rollout.query_mask[index]
        response_ids, response_mask = rollout.response_ids[index], rollout.response_mask[index]
        mask = response_mask.float()
        logprobs, entropy = self.response_logprobs(
            self.policy, query_ids, query_mask, response_ids, response_mask, entropy=True
        )
        values = self.response_values(query_ids, query_mask, response_ids, response_mask)
        pg_loss, pg_stats = ppo_math.policy_loss(
            logprobs, rollout.logprobs[index], rollout.advantages[index], mask, cfg.rl.epsilon
        )
        vf_loss, vf_stats = ppo_math.value_loss(
            values, rollout.values[index], rollout.returns[index], mask, cfg.ppo.cliprange_value
        )
        mean_entropy = ppo_math.masked_mean(entropy, mask)
        loss = pg_loss + cfg.ppo.vf_coef * vf_loss - cfg.ppo.entropy_coef * mean_entropy
        stats = {"policy_loss": pg_loss, "value_loss": vf_loss, "entropy": mean_entropy, **pg_stats, **vf_stats}
        return loss, {k: v.item() for k, v in stats.items()}

    # -----------------------------------------------------------------------------------------------------
    # The loop and saving

    def train(self, run: RunContext) -> Path:
        """Roll out and update until ``total_steps``, checkpointing every ``save_steps`` and at the end, then save
        ``final/`` and ``value_model/`` and return ``final/``. On SIGTERM/SIGINT, checkpoint the step just done
        and raise ``TrainingInterrupted``. Metrics, the signal flag, the NaN guard and the trackers are the run's."""
        self.guard = run.guard
        main = self.accelerator.is_main_process
        checkpoint = run.resume_checkpoint(main)
        step = self.load_checkpoint(checkpoint) if checkpoint else 0
        trackers = start_trackers(run) if main else []
        progress = Progress("ppo", self.total_steps, self.cfg.method_spec.shown, initial=step, enabled=main)
        self.progress = progress
        self.watch = HeldOutWatch(self.cfg, self.task_eval, main, kl_per_sequence=True)
        eval_every = self.cfg.eval_steps or self.cfg.logging_steps
        try:
            with run.stop:
                if self.task_eval and step == 0:
                    self.log(run, trackers, step, self.evaluate())
                batches = self.batches_from(step)
                while step < self.total_steps:
                    self.step = step  # steps done, for messages from within the update
                    rollout = self.rollout(next(batches))
                    history = self.update(rollout)
                    self.scheduler.step()
                    step += 1
                    progress.advance(step)
                    if step % self.cfg.logging_steps == 0 or step in (1, self.total_steps):
                        record = {
                            **self.gather_stats(rollout, history),
                            "learning_rate": self.scheduler.get_last_lr()[0],
                        }
                        self.log(run, trackers, step, record)
                    if self.task_eval and (step % eval_every == 0 or step == self.total_steps):
                        self.log(run, trackers, step, self.evaluate())
                    stopping = run.stop.requested(self.accelerator)
                    diverged = self.watch.stop_reason is not None
                    if stopping or diverged or step % self.cfg.save_steps == 0 or step == self.total_steps:
                        self.save_checkpoint(step)
                    if stopping:
                        raise run.interrupted()
                    if diverged:
                        break
        finally:
            progress.close()
            for tracker in trackers:
                tracker.finish()
        write_ranks_file(self.accelerator, self.shard, self.output_dir)
        final = self.save()
        if self.watch.stop_reason:
            raise self.watch.stopped()
        return final

    def evaluate(self) -> dict[str, float]:
        """The held-out task metrics: greedy answers scored by the run's rewards."""
        return self.task_eval(self.accelerator.unwrap_model(self.policy), self.accelerator)

    def log(self, run: RunContext, trackers: list, step: int, record: dict[str, float]) -> None:
        """One record to the run's ``HeldOutWatch`` (every process: it may save ``best/``), then to
        ``metrics.jsonl`` and the trackers (main process)."""
        if self.watch.observe(step, record):
            save = lambda folder: self.save_pretrained(self.policy, folder)  # noqa: E731
            self.watch.save_best(step, save, self.accelerator)
        if self.accelerator.is_main_process:
            run.metrics.write({"step": step, **record})
            self.progress.log(step, record)
            for tracker in trackers:
                tracker.log({f"ppo/{key}": value for key, value in record.items()}, step=step)

    def batches_from(self, step: int):
        """This process's rollout batches, without end, from where ``step`` steps leave off: each epoch's order is
        fixed by the seed and the epoch, and a resumed run skips the batches its epoch has used already."""
        epoch, done = divmod(step, len(self.loader))
        while True:
            self.loader.set_epoch(epoch)
            yield from self.accelerator.skip_first_batches(self.loader, done) if done else self.loader
            epoch, done = epoch + 1, 0

    def save_checkpoint(self, step: int) -> Path:
        """Everything ``--resume`` needs at ``step``: the trainable weights of policy and value model (the adapters,
        with LoRA), optimizer, scheduler, every process's RNG states, the step and the data position. Written to
        a staging folder, renamed to ``checkpoint-STEP`` when whole; only the ``save_total_limit`` newest kept."""
        from safetensors.torch import save_file

        accelerator = self.accelerator
        staging = self.output_dir / ".checkpoint-staging"
        target = self.output_dir / f"checkpoint-{step}"
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)  # left by a run that died while saving
            staging.mkdir(parents=True)
        accelerator.wait_for_everyone()
        torch.save(rng_states(), staging / f"rng_state_{accelerator.process_index}.pt")
        if accelerator.is_main_process:
            for model, name in ((self.policy, "policy"), (self.value_model, "value_model")):
                save_file(trainable_weights(accelerator.unwrap_model(model)), staging / f"{name}.safetensors")
            torch.save(self.optimizer.state_dict(), staging / "optimizer.pt")
            torch.save(self.scheduler.state_dict(), staging / "scheduler.pt")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            epoch, batches = divmod(step, len(self.loader))
            state = {"step": step, "epoch": epoch, "batches_in_epoch": batches, "world_size": accelerator.num_processes}
            (staging / PPO_STATE).write_text(json.dumps(state, indent=2) + "\n")
            shutil.rmtree(target, ignore_errors=True)  # an incomplete folder of that name, from an earlier attempt
            staging.rename(target)
            if self.cfg.save_total_limit:
                for old in complete_checkpoints(self.output_dir)[: -self.cfg.save_total_limit]:
                    shutil.rmtree(old)
            details.info("checkpoint saved: %s", target)
        accelerator.wait_for_everyone()
        return target

    def load_checkpoint(self, checkpoint: Path) -> int:
        """Restore what ``save_checkpoint`` wrote and return its step; the data position follows from the step."""
        accelerator = self.accelerator
        state = json.loads((checkpoint / PPO_STATE).read_text())
        if accelerator.is_main_process:
            logger.info("resuming from %s", checkpoint)
        for model, name in ((self.policy, "policy"), (self.value_model, "value_model")):
            load_trainable_weights(accelerator.unwrap_model(model), checkpoint / f"{name}.safetensors")
        self.optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True))
        self.scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
        if state["world_size"] != accelerator.num_processes:
            logger.warning(
                "%s was written by %d processes and this run has %d: sampling and data order will differ from an "
                "uninterrupted run",
                checkpoint,
                state["world_size"],
                accelerator.num_processes,
            )
        rng = checkpoint / f"rng_state_{accelerator.process_index}.pt"
        if rng.exists():  # a process added since has none: it keeps the seed's
            set_rng_states(torch.load(rng, weights_only=True))
        return state["step"]

    def gather_stats(self, rollout: Rollout, history: list[dict]) -> dict[str, float]:
        """Rollout and update statistics, averaged over minibatches and processes."""
        local = {k: float(v) for k, v in rollout.stats.items()}
        for key in history[0]:
            local[key] = sum(h[key] for h in history) / len(history)
        tensor = torch.tensor(list(local.values()), device=self.accelerator.device)
        averaged = self.accelerator.reduce(tensor, reduction="mean")
        return dict(zip(local, averaged.tolist(), strict=True))

    def save(self) -> Path:
        """The policy (and tokenizer) to ``final/``, the value model to ``value_model/``, each written whole."""
        final = self.output_dir / "final"
        for model, name in ((self.policy, "final"), (self.value_model, "value_model")):
            save_whole(
                self.output_dir / name, lambda folder, m=model: self.save_pretrained(m, folder), self.accelerator
            )
        if self.accelerator.is_main_process:
            logger.info("saved the policy to %s and the value model to %s", final, self.output_dir / "value_model")
        return final

    def save_pretrained(self, model, folder: Path) -> None:
        """``model`` and the tokenizer to ``folder`` (main process)."""
        if self.accelerator.is_main_process:
            self.accelerator.unwrap_model(model).save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)


def start_trackers(run: RunContext) -> list:
    """accelerate's trackers for ``report_to``, started, with the run's config: PPO has no Trainer whose
    integrations would log for it, and each ``report_to`` value means here what it means for the TRL methods
    (TensorBoard under ``tensorboard/``, W&B and trackio in the run's project, Neptune from $NEPTUNE_PROJECT)."""
    from accelerate.tracking import TensorBoardTracker, TrackioTracker, WandBTracker

    output_dir, report_to = str(run.output_dir), run.cfg.report_to
    trackers = []
    if "tensorboard" in report_to:
        trackers.append(TensorBoardTracker("tensorboard", output_dir))  # writes to output_dir/tensorboard
    if "wandb" in report_to:
        trackers.append(WandBTracker(run.project, name=run.run_name, dir=output_dir))
    if "trackio" in report_to:
        trackers.append(TrackioTracker(run.project, name=run.run_name))
    if "neptune" in report_to:
        trackers.append(NeptuneTracker(run.run_name))
    config = flat_scalars(run.cfg.to_dict())  # TensorBoard's hyperparameters are scalars
    for tracker in trackers:
        tracker.start()
        tracker.store_init_configuration(config)
    return trackers


def flat_scalars(values: dict, prefix: str = "") -> dict:
    """A nested config as {dotted key: number, bool or text}: lists and None become text."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(flat_scalars(value, f"{prefix}{key}."))
        else:
            value = value if isinstance(value, (bool, int, float, str)) else str(value)
            flat[prefix + key] = redact_secrets(value) if isinstance(value, str) else value  # (api:URL credentials)
    return flat


class NeptuneTracker:
    """Neptune for PPO, in the shape of accelerate's trackers (accelerate has none for Neptune): the project
    and API token come from $NEPTUNE_PROJECT and $NEPTUNE_API_TOKEN, as for transformers' NeptuneCallback."""

    def __init__(self, run_name: str):
        self.run_name, self.run = run_name, None

    def start(self) -> None:
        import neptune

        self.run = neptune.init_run(name=self.run_name)

    def store_init_configuration(self, values: dict) -> None:
        from neptune.utils import stringify_unsupported

        self.run["config"] = stringify_unsupported(values)

    def log(self, values: dict, step: int) -> None:
        for key, value in values.items():
            self.run[key].append(value, step=step)

    def finish(self) -> None:
        self.run.stop()


class EpochShuffle:
    """The dataset's indices in an order fixed by the seed and the epoch (set by accelerate's loader at each pass),
    so that a resumed run sees the prompts an uninterrupted one would, and every process draws the same order."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def trainable_weights(model) -> dict[str, torch.Tensor]:
    """The parameters that training changes (with LoRA: the adapters and the value model's head)."""
    return {name: p.detach().contiguous().cpu() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_weights(model, path: Path) -> None:
    from safetensors.torch import load_file

    saved = load_file(path)
    parameters = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if saved.keys() != parameters.keys():
        raise LlmrlError(
            f"{path} does not match this run's model ({len(saved)} saved tensors, {len(parameters)} trainable "
            "parameters): resume with the model and LoRA settings of the run that wrote it"
        )
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(saved[name])


def rng_states() -> dict:
    """This process's random states (Python, NumPy, torch, CUDA) as tensors and numbers: they load with
    ``weights_only=True``, so a checkpoint never runs pickled code."""
    import numpy as np

    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    states = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict) -> None:
    import numpy as np

    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal.tolist()), gauss))
    kind, keys, position, has_gauss, cached_gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def cut_after_end(response_ids: torch.Tensor, end_ids: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Responses padded after their first end token (kept), and the mask of the tokens that remain."""
    is_end = torch.isin(response_ids, torch.tensor(end_ids, device=response_ids.device))
    after_end = (is_end.cumsum(1) - is_end.long()) > 0  # strictly after the first end token
    mask = (~after_end).long()
    return response_ids.masked_fill(after_end, pad_id), mask


def disable_dropout(model) -> None:
    """PPO compares log-probabilities across passes: dropout would make them disagree."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
