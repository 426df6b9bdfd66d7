"""TRL's last PPOTrainer (trl 1.12.0, ``trl.experimental.ppo``) on local models, CPU fp32: the other side of
scripts/bench.py's PPO comparison. Runs in its own virtualenv (TRL 1.12 and the transformers of its day, made
by scripts/bench.py from requirements.txt beside this file), called by bench.py as a subprocess:

    HF_HUB_OFFLINE=1 VENV/bin/python scripts/trl_ppo/bench_trl_ppo.py --policy MODEL_DIR --reward-model RM_DIR \
        --prompts prompts.jsonl --steps 3 --batch-size 16 --out out.json

One "step" is one PPO update in TRL's sense: one rollout of --batch-size prompts (generate, score with the reward
model, value/ref forward passes, GAE) followed by --ppo-epochs epochs over --num-mini-batches minibatches.

Batch-size mapping (TRL's semantics): rollout batch = per_device_train_batch_size * gradient_accumulation_steps *
world_size. This script sets per_device_train_batch_size = --batch-size and gradient_accumulation_steps = --grad-accum
(default 1; with >1, per_device_train_batch_size = batch_size / grad_accum), so with the default every minibatch of
batch_size / num_mini_batches rows is one forward/backward and one optimizer step. total_episodes = steps * batch_size.

Options left at None take TRL's PPOConfig default; the JSON records every PPOConfig field actually used.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident set size (VmRSS) or its peak since the last reset (VmHWM), MiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # 5: VmHWM restarts from the current RSS
        f.write("5")


def ppo_config_dict(cfg) -> dict:
    """Every PPOConfig field as used (after PPOTrainer filled in batch_size etc.), JSON-safe.

    TrainingArguments.to_dict() redacts every key ending in "_token" (meant for hub_token), which would hide
    stop_token; put the real values back except for the actual credentials."""
    d = cfg.to_dict()
    for k in d:
        if k.endswith("_token") and k not in ("hub_token", "push_to_hub_token"):
            d[k] = getattr(cfg, k, d[k])
    return json.loads(json.dumps(d, default=str))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True, help="causal LM folder (policy; the reference is a copy of it)")
    p.add_argument("--reward-model", required=True, help="AutoModelForSequenceClassification folder, num_labels=1")
    p.add_argument(
        "--value-model", default=None, help="value model folder (default: the reward model, as TRL's examples)"
    )
    p.add_argument("--prompts", required=True, help='JSONL, rows {"prompt": [{"role": "user", "content": ...}], ...}')
    p.add_argument("--max-prompts", type=int, default=None, help="use only the first N prompts")
    p.add_argument("--steps", type=int, required=True, help="PPO updates (rollout batches) to run")
    p.add_argument("--batch-size", type=int, required=True, help="prompts per rollout")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient_accumulation_steps (see module doc)")
    p.add_argument("--num-mini-batches", type=int, default=None)
    p.add_argument("--ppo-epochs", type=int, default=None, help="num_ppo_epochs")
    p.add_argument("--response-length", type=int, default=None)
    p.add_argument(
        "--rollout-forward-batch-size",
        type=int,
        default=None,
        help="local_rollout_forward_batch_size (default: --batch-size, i.e. one generate call per rollout)",
    )
    p.add_argument("--kl-coef", type=float, default=None)
    p.add_argument("--kl-estimator", choices=["k1", "k3"], default=None)
    p.add_argument("--gamma", type=float, default=None)
    p.add_argument("--lam", type=float, default=None)
    p.add_argument("--cliprange", type=float, default=None)
    p.add_argument("--cliprange-value", type=float, default=None)
    p.add_argument("--vf-coef", type=float, default=None)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--lr-scheduler-type", default=None, help="TRL default: linear decay to 0 over the run")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument(
        "--stop-token",
        choices=["eos", "none"],
        default="eos",
        help="eos: stop generation at the tokenizer's EOS and score there (TRL's default is none: "
        "always generate response_length tokens and score the last one)",
    )
    p.add_argument("--missing-eos-penalty", type=float, default=None)
    p.add_argument("--whiten-rewards", action="store_true", default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--out", required=True, help="JSON result path")
    p.add_argument("--save", default=None, help="a folder to save the trained policy and its tokenizer to")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rss_start = rss_mib()
    load_start = os.getloadavg()  # the machine's 1/5/15-min load: a busy CPU makes the timings meaningless
    t_script = time.perf_counter()

    import torch
    import transformers
    import trl
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        TrainerCallback,
        set_seed,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    defaults = PPOConfig.__dataclass_fields__
    seed = args.seed if args.seed is not None else defaults["seed"].default
    set_seed(seed)

    # ---- tokenizer + query ids (chat template, add_generation_prompt=True), left padding as TRL's PPO needs
    tok = AutoTokenizer.from_pretrained(args.policy, padding_side="left")
    if tok.pad_token is None:
        raise SystemExit("tokenizer has no pad token; TRL's PPO masks on pad_token_id, give it a distinct one")
    if tok.pad_token_id == tok.eos_token_id:
        print("warning: pad == eos; TRL's PPO treats every pad-id token as padding", file=sys.stderr)
    rows = []
    with open(args.prompts) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    if args.max_prompts:
        rows = rows[: args.max_prompts]
    input_ids = []
    for r in rows:
        text = tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
        input_ids.append(tok(text, add_special_tokens=False)["input_ids"])
    if len(input_ids) < args.batch_size:
        raise SystemExit(f"{len(input_ids)} prompts < batch size {args.batch_size} (TRL's dataloader drops the last)")
    train_dataset = Dataset.from_dict({"input_ids": input_ids})

    # ---- models, fp32 on CPU
    policy = AutoModelForCausalLM.from_pretrained(args.policy, dtype=torch.float32)
    reward_model = AutoModelForSequenceClassification.from_pretrained(
        args.reward_model, num_labels=1, dtype=torch.float32
    )
    value_path = args.value_model or args.reward_model
    value_model = AutoModelForSequenceClassification.from_pretrained(value_path, num_labels=1, dtype=torch.float32)
    for m in (policy, reward_model, value_model):
        if m.config.pad_token_id is None:
            m.config.pad_token_id = tok.pad_token_id
    rss_loaded = rss_mib()

    # ---- config
    if args.batch_size % args.grad_accum:
        raise SystemExit("--batch-size must be a multiple of --grad-accum")
    overrides = dict(
        num_mini_batches=args.num_mini_batches,
        num_ppo_epochs=args.ppo_epochs,
        response_length=args.response_length,
        kl_coef=args.kl_coef,
        kl_estimator=args.kl_estimator,
        gamma=args.gamma,
        lam=args.lam,
        cliprange=args.cliprange,
        cliprange_value=args.cliprange_value,
        vf_coef=args.vf_coef,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler_type,
        temperature=args.temperature,
        missing_eos_penalty=args.missing_eos_penalty,
        whiten_rewards=args.whiten_rewards,
    )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    output_dir = tempfile.mkdtemp(prefix="trl-ppo-bench-")
    config = PPOConfig(
        output_dir=output_dir,
        use_cpu=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        num_sample_generations=0,  # no debugging sample generations during training
        logging_steps=1,
        disable_tqdm=True,  # TRL then adds PrinterCallback; we drop it below to keep stdout clean
        dataloader_num_workers=0,
        seed=seed,
        per_device_train_batch_size=args.batch_size // args.grad_accum,
        gradient_accumulation_steps=args.grad_accum,
        local_rollout_forward_batch_size=args.rollout_forward_batch_size or args.batch_size,
        total_episodes=args.steps * args.batch_size,
        stop_token=None if args.stop_token == "none" else args.stop_token,
        sft_model_path=args.policy,
        reward_model_path=args.reward_model,
        **overrides,
    )

    # ---- timing / score callback
    class Recorder(TrainerCallback):
        def __init__(self):
            self.step_s, self.logs, self.t_last = [], [], None

        def on_train_begin(self, a, state, control, **kw):
            self.t_last = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            now = time.perf_counter()
            self.step_s.append(now - self.t_last)
            self.t_last = now

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "objective/scores" in logs or logs and "objective/rlhf_reward" in logs:
                self.logs.append(dict(logs))

    rec = Recorder()
    trainer = PPOTrainer(
        args=config,
        processing_class=tok,
        model=policy,
        ref_model=None,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=train_dataset,
        eval_dataset=None,
        callbacks=[rec],
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    # count the optimizer steps that really update weights: PPOTrainer calls the accelerate-wrapped optimizer's
    # step() on every micro-batch, which only reaches torch's step() when gradients sync (gradient accumulation)
    inner = trainer.optimizer.optimizer
    n_opt = {"steps": 0}
    _orig_step = inner.step

    def counted_step(*a, **kw):
        n_opt["steps"] += 1
        return _orig_step(*a, **kw)

    inner.step = counted_step
    reset_peak_rss()  # the peak during training, as scripts/bench.py measures llmrl's side
    rss_before_train = rss_mib()
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    rss_after = rss_mib("VmHWM")
    if args.save:
        trainer.policy_model.save_pretrained(args.save)  # the policy alone, not TRL's policy+value wrapper
        tok.save_pretrained(args.save)

    steps = rec.step_s
    scores = [log.get("objective/scores") for log in rec.logs]
    rlhf = [log.get("objective/rlhf_reward") for log in rec.logs]
    result = {
        "framework": "trl",
        "trainer": "trl.experimental.ppo.PPOTrainer",
        "trl_version": trl.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "cli_args": vars(args),
        "num_prompts": len(input_ids),
        "steps_run": len(steps),
        "step_s": steps,
        "scores": scores,
        "rlhf_reward": rlhf,
        "median_s_per_step_excl_first": statistics.median(steps[1:]) if len(steps) > 1 else None,
        "mean_s_per_step_excl_first": statistics.mean(steps[1:]) if len(steps) > 1 else None,
        "optimizer_steps": n_opt["steps"],
        "train_s": train_s,
        "script_s": time.perf_counter() - t_script,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "peak_rss_mib": {
            "start": rss_start,
            "models_loaded": rss_loaded,
            "before_train": rss_before_train,
            "peak_in_training": rss_after,
        },
        "logs": rec.logs,
        "ppo_config": ppo_config_dict(trainer.args),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "trl_version",
                    "transformers_version",
                    "torch_version",
                    "step_s",
                    "scores",
                    "median_s_per_step_excl_first",
                    "peak_rss_mib",
                )
            }
        )
    )


if __name__ == "__main__":
    main()
