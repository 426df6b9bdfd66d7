"""A one-shot check of llmrl on a CUDA GPU, through llmrl's own code paths, written to ``<out>/gpu_check.json``.

1. ``bf16_master_weights``: a bf16 SFT run at a learning rate of 1e-6 moves nearly every weight (fp32 masters).
2. ``liger_vs_plain``: Liger's kernels give the plain model's logits, loss and gradients.
3. ``packed_equals_padded_sdpa``: DPO's padding-free batches give the padded batch's loss and gradients.
4. ``memory_estimate_vs_peak``: ``llmrl.hardware.training_memory`` against the measured peak of an SFT run of a
   Qwen2.5-0.5B-shaped model (8 x 1024 tokens), with its tokens/s and MFU against a measured matmul rate.
5. ``ppo_peak_accumulation``: PPO's peak at gradient accumulation 8 stays near accumulation 1's.
6. ``memory_back_to_baseline``: GPU memory returns to its baseline after an SFT and a DPO run.
7. ``step_times``: seconds per step of DPO, GRPO (with the share spent generating) and PPO on that model.

The JSON is rewritten after every check, so a run cut short keeps what it measured; every check runs in its own
try/except with its own time, and checks left when ``--budget-seconds`` (from the start) are spent are recorded
as "skipped (time budget)". Without CUDA (a rehearsal on a CPU machine) the checks that need it run through the
same code at tiny shapes and record "skipped (needs CUDA)" with null figures (what the CPU measured, where it
means anything, under "rehearsal"); the others run fully. On a CPU machine it takes about 20 s; on an H200 it
should take 4-5 minutes (most of it loading, generating and saving a 0.5B model and its optimizer state).

On the lent GPU machine, one command for the device tool, carrying the wheels of ``scripts/gpu_check.sh wheels``
(the script first installs them into /tmp/site when trl is missing, then runs this with $OUT as the output):

    run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=600)

Here:

    scripts/gpu_check.sh wheels                    # once, with network: .whl/
    scripts/gpu_check.sh [--only a,b] [--budget-seconds 420]
    .venv/bin/python scripts/gpu_check.py --markdown .gpu_check/gpu_check.json   # the table for docs/benchmarks.md
"""

import argparse
import contextlib
import copy
import datetime
import gc
import importlib.metadata
import importlib.util
import json
import math
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # llmrl from this working tree: it is not installed on the GPU machine

NEEDS_CUDA = "skipped (needs CUDA)"
OUT_OF_TIME = "skipped (time budget)"
GIB = 2**30
QWEN_05B = dict(  # Qwen2.5-0.5B's shape (494M parameters), randomly initialised
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    vocab_size=151936,
    tie_word_embeddings=True,
    max_position_embeddings=4096,
)
QWEN_TINY = dict(
    QWEN_05B, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, vocab_size=4096
)
LLAMA_SHAPE = dict(num_hidden_layers=4, num_key_value_heads=4)  # liger_vs_plain's model, with the sizes below
NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]


@dataclass(frozen=True)
class Sizes:
    """The shapes of the checks: CUDA's, and a rehearsal of the same code small enough for 2 CPU cores."""

    qwen: dict
    sft_tokens: int  # tokens per SFT row (max_length)
    sft_steps: int
    dpo_tokens: int  # tokens per DPO sequence (prompt + answer)
    rl_tokens: int  # completion length of GRPO and PPO in step_times
    ppo_accumulation_tokens: int
    timed_steps: int  # steps of each step_times run; the first is not timed
    liger: dict  # the Llama model of liger_vs_plain
    liger_batch: tuple[int, int]
    matmul: int


CUDA_SIZES = Sizes(
    qwen=QWEN_05B,
    sft_tokens=1024,
    sft_steps=5,  # 3 would leave two timed steps
    dpo_tokens=512,
    rl_tokens=256,
    ppo_accumulation_tokens=128,
    timed_steps=4,
    liger=dict(LLAMA_SHAPE, hidden_size=1024, intermediate_size=2816, num_attention_heads=16, vocab_size=32000),
    liger_batch=(4, 512),
    matmul=8192,
)
CPU_SIZES = Sizes(
    qwen=QWEN_TINY,
    sft_tokens=128,
    sft_steps=2,
    dpo_tokens=64,
    rl_tokens=16,
    ppo_accumulation_tokens=16,
    timed_steps=2,
    liger=dict(LLAMA_SHAPE, hidden_size=64, intermediate_size=160, num_attention_heads=4, vocab_size=512),
    liger_batch=(2, 32),
    matmul=256,
)


# ---------------------------------------------------------------------------------------------------------
# What the checks share


class Context:
    """The device, the sizes, a scratch folder, the time budget, and the model and data files built once."""

    def __init__(self, work: Path, budget_seconds: float):
        import torch

        self.cuda = torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        self.sizes = CUDA_SIZES if self.cuda else CPU_SIZES
        self.precision = ["precision=bf16"] if self.cuda else []  # CPU: llmrl's auto, fp32
        self.work = work
        self.deadline = time.monotonic() + budget_seconds
        self.files: dict[str, Path] = {}

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def qwen(self) -> Path:
        """A randomly initialised Qwen2 model of ``sizes.qwen``'s shape, saved in bf16 with the builtin:small
        tokenizer (its 1536 ids fit the bigger vocabulary; ids beyond it decode to nothing)."""
        if "qwen" not in self.files:
            import torch
            from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

            from llmrl.builtin import ensure_builtin

            folder = self.work / "qwen"
            tokenizer = AutoTokenizer.from_pretrained(ensure_builtin("small"))
            ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
            config = Qwen2Config(**self.sizes.qwen, **ids, pad_token_id=tokenizer.pad_token_id)
            torch.manual_seed(0)
            with torch.device(self.device):  # initialising 494M weights on a GPU: a second
                model = Qwen2ForCausalLM(config)
            model.to(torch.bfloat16).save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            del model
            release_memory()
            self.files["qwen"] = folder
        return self.files["qwen"]

    def data(self, kind: str, rows: int, tokens: int) -> Path:
        """A JSONL of ``rows`` chats (kind ``sft``) or preference pairs (``dpo``) of random number words, each
        sequence (prompt and answer) ``tokens`` tokens long in the builtin:small chat template, to within 4."""
        key = f"{kind}-{rows}x{tokens}"
        if key not in self.files:
            from transformers import AutoTokenizer

            from llmrl.builtin import ensure_builtin

            tokenizer = AutoTokenizer.from_pretrained(ensure_builtin("small"))
            rng = random.Random(0)
            prompt_words = tokens // 8 if kind == "sft" else tokens // 3
            lines = []
            for _ in range(rows):
                prompt = [{"role": "user", "content": number_words(rng, prompt_words)}]
                answers = [fill_answer(tokenizer, rng, prompt, tokens - 4) for _ in range(1 if kind == "sft" else 2)]
                row = {"messages": prompt + answers[0]} if kind == "sft" else {
                    "prompt": prompt, "chosen": answers[0], "rejected": answers[1]}  # fmt: skip
                lines.append(json.dumps(row) + "\n")
            self.files[key] = self.work / f"{key}.jsonl"
            self.files[key].write_text("".join(lines))
        return self.files[key]


def number_words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(NUMBER_WORDS) for _ in range(count))  # one token each in builtin:small's tokenizer


def fill_answer(tokenizer, rng: random.Random, prompt: list, tokens: int) -> list:
    """An assistant message that makes ``prompt`` + it exactly ``tokens`` tokens long in the chat template."""
    words = tokens
    for _ in range(5):
        answer = [{"role": "assistant", "content": number_words(rng, max(words, 1))}]
        length = len(tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=True)["input_ids"])
        if length == tokens:
            break
        words += tokens - length
    return answer


# Every record written to a run's metrics.jsonl, with the time it was written (llmrl's TRL loop and its PPO
# loop both write one per logging step through MetricsFile.write; with logging_steps=1, one per step).
LOGGED: list[tuple[float, dict]] = []


def time_metric_records() -> None:
    from llmrl.run_context import MetricsFile

    write = MetricsFile.write

    def timed_write(self, record):
        write(self, record)
        LOGGED.append((time.perf_counter(), dict(record)))

    MetricsFile.write = timed_write


@dataclass
class Trained:
    final: Path
    steps: list[tuple[float, dict]]  # (time, record) of the first record of each optimizer step
    seconds: float  # the whole run_training call: loading, data, training, saving


def train(ctx: Context, name: str, sets: list[str], keep: bool = False) -> Trained:
    """One run through ``llmrl.runner.run_training`` in a fresh folder, logging every step; the folder (a
    checkpoint of a 0.5B model and its optimizer is several GB) is removed afterwards unless ``keep``."""
    from llmrl.config import load_config
    from llmrl.runner import run_training

    output_dir = ctx.work / name
    shutil.rmtree(output_dir, ignore_errors=True)
    cfg = load_config(sets=[*ctx.precision, *sets, f"output_dir={output_dir}", "logging_steps=1"])
    LOGGED.clear()
    started = time.perf_counter()
    final = run_training(cfg)
    seconds = time.perf_counter() - started
    steps: dict[int, tuple[float, dict]] = {}
    for when, record in LOGGED:
        if "train_runtime" not in record and not any(key.startswith("eval_") for key in record):
            steps.setdefault(record["step"], (when, record))
    if not keep:
        shutil.rmtree(output_dir, ignore_errors=True)
    return Trained(final, [steps[step] for step in sorted(steps)], seconds)


def seconds_per_step(steps: list[tuple[float, dict]]) -> float | None:
    """Between the first step's record and the last's, per step: the first step (warm-up, compilation,
    allocator growth) is not timed. None with fewer than two steps."""
    if len(steps) < 2:
        return None
    return (steps[-1][0] - steps[0][0]) / (len(steps) - 1)


def release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def measure_peak(ctx: Context, work):
    """(what ``work()`` returns, the GPU memory it allocated at its peak above what was allocated before, in
    bytes; None without CUDA)."""
    import torch

    if not ctx.cuda:
        return work(), None
    release_memory()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = work()
    torch.cuda.synchronize()
    return result, torch.cuda.max_memory_allocated() - before


def verdict(ok: bool) -> str:
    return "pass" if ok else "fail"


def gib(value: float | None) -> float | None:
    return None if value is None else value / GIB


# ---------------------------------------------------------------------------------------------------------
# The checks


def bf16_master_weights(ctx: Context) -> dict:
    """SFT of builtin:small in bf16 at learning rate 1e-6, 2 steps: the share of weight elements that differ from
    the base. Trained in fp32 (master weights) nearly all move; kept in bf16 (8 bits of mantissa), updates of
    1e-6 round away and almost none would."""
    from safetensors.torch import load_file

    from llmrl.builtin import ensure_builtin

    sets = ["method=sft", "model=builtin:small", "dataset=builtin:sft", "precision=bf16", "learning_rate=1e-6"]
    run = train(ctx, "bf16_master_weights", [*sets, "max_steps=2"], keep=True)
    base, tuned = load_file(ensure_builtin("small") / "model.safetensors"), load_file(run.final / "model.safetensors")
    shutil.rmtree(run.final.parent, ignore_errors=True)
    changed = total = 0
    for name, weight in base.items():
        if name in tuned and weight.is_floating_point():
            changed += int((tuned[name].float() != weight.float()).sum())
            total += weight.numel()
    fraction = changed / total
    return {
        "status": verdict(fraction > 0.95),
        "changed_fraction": fraction,
        "elements": total,
        "saved_dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in tuned.values()}),
        "note": "pass: > 0.95 of the weights changed (runs on CPU too: bf16 autocast works there)",
    }


def liger_vs_plain(ctx: Context) -> dict:
    """A random Llama model in bf16 on a fixed batch: logits, summed log-likelihood loss and gradient norm, plain
    and after ``llmrl.loading.apply_liger_kernels`` on a copy. Without CUDA or liger-kernel the copy stays plain
    (the comparison code runs, the figures are null)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmrl.loading import apply_liger_kernels

    liger = importlib.util.find_spec("liger_kernel") is not None
    device, dtype = ctx.device, torch.bfloat16 if ctx.cuda else torch.float32
    torch.manual_seed(0)
    plain = LlamaForCausalLM(LlamaConfig(**ctx.sizes.liger)).to(device, dtype)
    patched = copy.deepcopy(plain)
    ids = torch.randint(ctx.sizes.liger["vocab_size"], ctx.sizes.liger_batch, device=device)

    def forward_backward(model):
        model.zero_grad()
        logits = model(input_ids=ids).logits
        log_likelihood = logits[:, :-1].float().log_softmax(-1).gather(-1, ids[:, 1:, None]).sum()
        (-log_likelihood).backward()
        grads = [p.grad.float().norm() for p in model.parameters() if p.grad is not None]
        return logits.detach().float(), float(-log_likelihood), float(torch.stack(grads).norm())

    logits, loss, grad_norm = forward_backward(plain)  # before patching: Liger also replaces module functions
    if ctx.cuda and liger:
        apply_liger_kernels(patched)
    liger_modules = sum(m._get_name().startswith("Liger") for m in patched.modules())  # Liger renames them
    liger_logits, liger_loss, liger_grad_norm = forward_backward(patched)
    logits_diff = float((liger_logits - logits).abs().max())
    figures = {
        "liger_modules": liger_modules,
        "logits_max_abs_diff": logits_diff,
        "logits_max_rel_diff": logits_diff / float(logits.abs().max()),
        "loss": loss,
        "loss_rel_diff": abs(liger_loss - loss) / abs(loss),
        "grad_norm_ratio": liger_grad_norm / grad_norm,
    }
    note = "pass: Liger modules in place and the loss within 1e-2 relative"
    if not (ctx.cuda and liger):
        why = "CUDA" if not ctx.cuda else "liger-kernel"
        return {"status": NEEDS_CUDA if not ctx.cuda else "fail", **dict.fromkeys(figures), "note": f"no {why}"}
    return {"status": verdict(liger_modules > 0 and figures["loss_rel_diff"] < 1e-2), **figures, "note": note}


def packed_equals_padded_sdpa(ctx: Context) -> dict:
    """DPO on builtin:small, built twice (padding_free false and true, the same weights): loss and gradients of
    one collated batch of a long pair among short ones (as tests/test_padding_free.py does). On CUDA under
    bf16 autocast, on CPU in fp32, with the tolerances of each."""
    import torch

    from llmrl.config import load_config
    from llmrl.methods import dpo
    from llmrl.padding_free import is_padding_free, pack

    pairs = write_variable_length_pairs(ctx.work / "pairs.jsonl")
    sets = [*ctx.precision, "method=dpo", "model=builtin:small", f"dataset={pairs}", "group_by_length=false"]
    sets.append(f"output_dir={ctx.work / 'packed_equals_padded'}")
    padded = dpo.build_trainer(load_config(sets=[*sets, "padding_free=false"]))
    packed = dpo.build_trainer(load_config(sets=[*sets, "padding_free=true"]))
    assert is_padding_free(packed.model) and not is_padding_free(padded.model)
    packed.model.load_state_dict(padded.model.state_dict())
    rows = [padded.train_dataset[i] for i in range(len(padded.train_dataset))]
    rows.sort(key=lambda row: int(padded.data_collator([row])["attention_mask"].sum()))
    batch = padded.data_collator([rows[-1], *rows[:7]])
    packing = pack(batch["attention_mask"])
    for trainer in (padded, packed):  # where train() would put them (transformers' Trainer does already)
        for model in (trainer.model, getattr(trainer, "ref_model", None)):
            if model is not None:
                model.to(trainer.args.device)

    def step(trainer):
        """(loss, every trainable parameter's gradient) of one training micro-batch, under the run's autocast."""
        trainer.model.train()
        trainer.model.zero_grad()
        for values in trainer._metrics["train"].values():
            values.clear()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if ctx.cuda else contextlib.nullcontext()
        with autocast:
            loss = trainer.compute_loss(trainer.model, trainer._prepare_inputs(dict(batch)))
        loss.backward()
        logps = trainer._metrics["train"]["logps/chosen"][-1]  # the loss is log 2 while policy = reference
        grads = {n: p.grad.float().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        return float(loss.detach()), logps, grads

    loss, logps, grads = step(padded)
    packed_loss, packed_logps, packed_grads = step(packed)
    diffs = {name: float((grads[name] - packed_grads[name]).abs().max()) for name in grads}
    grad_diff = max(diffs.values())
    grad_rel = max(diffs[name] / max(float(grads[name].abs().max()), 1e-12) for name in grads)
    loss_rel = abs(packed_loss - loss) / abs(loss)
    logps_rel = abs(packed_logps - logps) / abs(logps)
    loss_tolerance, grad_tolerance = (2e-2, 1e-1) if ctx.cuda else (1e-5, 1e-4)
    ok = max(loss_rel, logps_rel) <= loss_tolerance and grad_rel <= grad_tolerance
    return {
        "status": verdict(ok),
        "device": ctx.device,
        "attention": padded.model.config._attn_implementation,
        "positions_packed_share": packing.packed_shape[0] * packing.packed_shape[1] / batch["attention_mask"].numel(),
        "loss": loss,
        "loss_rel_diff": loss_rel,
        "logps_chosen_rel_diff": logps_rel,
        "grad_max_abs_diff": grad_diff,
        "grad_max_rel_diff": grad_rel,
        "note": f"pass: loss and chosen log-probs within {loss_tolerance:g} relative, each gradient within "
        f"{grad_tolerance:g} of its largest element ({'bf16 autocast' if ctx.cuda else 'fp32'})",
    }


def write_variable_length_pairs(path: Path, count: int = 32, longest: int = 50) -> Path:
    """Pairs of very different lengths (a few long among short ones), as tests/test_padding_free.py writes."""
    rows = []
    for i in range(count):
        terms = longest if i % 8 == 0 else 1 + i % 5
        question = {"role": "user", "content": "Add " + " + ".join(["1"] * terms) + "."}
        rows.append({
            "prompt": [question],
            "chosen": [{"role": "assistant", "content": f"{terms}"}],
            "rejected": [{"role": "assistant", "content": f"{terms + 1} because " + "1 " * (i % 7)}],
        })  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def memory_estimate_vs_peak(ctx: Context) -> dict:
    """SFT of the Qwen2.5-0.5B-shaped model, 8 rows of 1024 tokens a step, no gradient checkpointing: the
    measured peak against ``training_memory``'s estimate, and tokens/s and MFU over the steps after the first."""
    from llmrl.config import load_config
    from llmrl.hardware import training_memory

    tflops = matmul_tflops(ctx)
    sizes = ctx.sizes
    data = ctx.data("sft", 8 * sizes.sft_steps, sizes.sft_tokens)
    sets = ["method=sft", f"model={ctx.qwen()}", f"dataset={data}", f"max_length={sizes.sft_tokens}"]
    sets += ["per_device_train_batch_size=8", "gradient_checkpointing=false", f"max_steps={sizes.sft_steps}"]
    parts = training_memory(load_config(sets=[*ctx.precision, *sets]))
    estimate = sum(parts.values())
    run, peak = measure_peak(ctx, lambda: train(ctx, "sft_memory", sets))
    tokens = [record.get("num_tokens") for _, record in run.steps]
    step_seconds = seconds_per_step(run.steps)
    tokens_per_s = None
    if step_seconds and None not in tokens:
        tokens_per_s = (tokens[-1] - tokens[0]) / (step_seconds * (len(tokens) - 1))
    parameters = model_parameters(ctx.qwen())
    figures = {
        "peak_gib": gib(peak),
        "estimate_gib": gib(estimate),
        "estimate_over_peak": estimate / peak if peak else None,
        "tokens_per_s": tokens_per_s,
        "matmul_bf16_tflops": tflops,
        "mfu": 6 * parameters * tokens_per_s / (tflops * 1e12) if tokens_per_s and tflops else None,
        "s_per_step": step_seconds,
    }
    details = {"parameters": parameters, "estimate_parts_gib": {k: v / GIB for k, v in parts.items()}}
    note = (
        "pass: the estimate is an upper one within 1.5x of the peak (allocated above the run's start); tokens/s "
        "from num_tokens and the times the step records were written, the first step excluded; MFU = 6 x "
        "parameters x tokens/s / the measured 8192^3 bf16 matmul rate (attention FLOPs not counted)"
    )
    if not ctx.cuda:
        return {"status": NEEDS_CUDA, **dict.fromkeys(figures), **details, "note": note, "rehearsal": figures}
    return {"status": verdict(1.0 <= estimate / peak <= 1.5), **figures, **details, "note": note}


def matmul_tflops(ctx: Context) -> float | None:
    """The GPU's bf16 matmul rate: 8192^3 products, 3 warm-up, then the best of 3 rounds of 10 timed with CUDA
    events. Without CUDA a small fp32 product runs through the same loop and None is returned."""
    import torch

    n = ctx.sizes.matmul
    device, dtype = ctx.device, torch.bfloat16 if ctx.cuda else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        if ctx.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                a @ b
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) / 1000
        else:
            started = time.perf_counter()
            for _ in range(10):
                a @ b
            seconds = time.perf_counter() - started
        best = max(best, 10 * 2 * n**3 / seconds / 1e12)
    return best if ctx.cuda else None


def model_parameters(folder: Path) -> int:
    """Parameters of a saved model (tied embeddings once), from its safetensors header."""
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as f:
        return sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())  # noqa: SIM118


def ppo_peak_accumulation(ctx: Context) -> dict:
    """llmrl's PPO on the Qwen-shaped model, 8 prompts a micro-batch, 128-token answers, one step, at gradient
    accumulation 1 and 8: the rollout generates for all 64 prompts at once but runs its forwards one micro-batch
    at a time, so the peak should grow little."""
    sets = ["method=ppo", f"model={ctx.qwen()}", "dataset=builtin:prompts", "rewards=[length]", "max_steps=1"]
    sets += ["per_device_train_batch_size=8", f"rl.max_completion_length={ctx.sizes.ppo_accumulation_tokens}"]
    peaks = {}
    for accumulation in (1, 8):
        run_sets = [*sets, f"gradient_accumulation_steps={accumulation}"]
        _, peaks[accumulation] = measure_peak(ctx, partial(train, ctx, f"ppo_accumulation_{accumulation}", run_sets))
    note = "pass: the peak at accumulation 8 below 1.5x the peak at 1 (allocated above each run's start)"
    if not ctx.cuda:
        return {
            "status": NEEDS_CUDA,
            **dict.fromkeys(["peak_gib_accumulation_1", "peak_gib_accumulation_8", "ratio"]),
            "note": note,
        }
    ratio = peaks[8] / peaks[1]
    return {
        "status": verdict(ratio < 1.5),
        "peak_gib_accumulation_1": gib(peaks[1]),
        "peak_gib_accumulation_8": gib(peaks[8]),
        "ratio": ratio,
        "note": note,
    }


def memory_back_to_baseline(ctx: Context) -> dict:
    """GPU memory allocated before, and right after an SFT run and a DPO run of builtin:small (run_training
    each, in this process, without collecting garbage here): llmrl's runner frees what a run held."""
    import torch

    def allocated() -> int | None:
        return torch.cuda.memory_allocated() if ctx.cuda else None

    if ctx.cuda:  # cuBLAS and its workspace first, so that they are in the baseline
        ones = torch.ones(64, 64, device=ctx.device, dtype=torch.bfloat16)
        ones @ ones
    release_memory()
    baseline = allocated()
    after = {}
    for method, dataset in (("sft", "builtin:sft"), ("dpo", "builtin:preference")):
        sets = [f"method={method}", "model=builtin:small", f"dataset={dataset}", "max_steps=2"]
        train(ctx, f"baseline_{method}", sets)
        after[method] = allocated()
    note = "pass: within 64 MiB of the baseline after each run"
    figures = {"baseline_mib": baseline, "after_sft_mib": after["sft"], "after_dpo_mib": after["dpo"]}
    if not ctx.cuda:
        return {"status": NEEDS_CUDA, **figures, "note": note}
    ok = all(abs(value - baseline) <= 64 * 2**20 for value in after.values())
    return {"status": verdict(ok), **{k: v / 2**20 for k, v in figures.items()}, "note": note}


def step_times(ctx: Context) -> dict:
    """Seconds per step of DPO (8 pairs of ~512 tokens), GRPO (8 completions of one prompt, 256 tokens) and PPO
    (8 prompts, 256 tokens) on the Qwen-shaped model, and the share of GRPO's and PPO's steps spent in
    transformers' generate (timed by wrapping GenerationMixin.generate)."""
    import torch
    import transformers

    sizes, model = ctx.sizes, ctx.qwen()
    common = [f"model={model}", "per_device_train_batch_size=8", f"max_steps={sizes.timed_steps}"]
    online = ["dataset=builtin:prompts", "rewards=[length]", f"rl.max_completion_length={sizes.rl_tokens}"]
    pairs = ctx.data("dpo", 8 * sizes.timed_steps, sizes.dpo_tokens)
    runs = {
        "dpo": ["method=dpo", f"dataset={pairs}", f"max_length={sizes.dpo_tokens}"],
        "grpo": ["method=grpo", *online, "rl.num_generations=8"],
        "ppo": ["method=ppo", *online],
    }
    generating: list[tuple[float, float]] = []
    generate = transformers.GenerationMixin.generate

    def timed_generate(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return generate(self, *args, **kwargs)
        finally:
            if ctx.cuda:
                torch.cuda.synchronize()
            generating.append((started, time.perf_counter()))

    figures: dict = {}
    skipped = []
    transformers.GenerationMixin.generate = timed_generate
    try:
        for method, sets in runs.items():
            if ctx.out_of_time():
                skipped.append(method)
                continue
            generating.clear()
            run = train(ctx, f"step_times_{method}", [*common, *sets])
            figures[f"{method}_s_per_step"] = seconds_per_step(run.steps)
            figures[f"{method}_run_s"] = run.seconds
            if method != "dpo" and len(run.steps) >= 2:
                first, last = run.steps[0][0], run.steps[-1][0]
                spent = sum(end - start for start, end in generating if start >= first)
                figures[f"{method}_generate_share"] = spent / (last - first)
    finally:
        transformers.GenerationMixin.generate = generate
    note = (
        f"{sizes.timed_steps} steps each; s/step from the times llmrl wrote each step's metrics record, the first "
        "step excluded; run_s: the whole run_training call (loading, data, saving). DPO on generated ~512-token "
        "pairs (builtin:preference's are ~40 tokens)"
    )
    if skipped:
        note += f"; not run (time budget): {', '.join(skipped)}"
    if not ctx.cuda:
        return {"status": NEEDS_CUDA, **dict.fromkeys(figures), "note": note, "rehearsal": figures}
    return {"status": "pass" if not skipped else OUT_OF_TIME, **figures, "note": note}


CHECKS = {
    "bf16_master_weights": bf16_master_weights,
    "liger_vs_plain": liger_vs_plain,
    "packed_equals_padded_sdpa": packed_equals_padded_sdpa,
    "memory_estimate_vs_peak": memory_estimate_vs_peak,
    "ppo_peak_accumulation": ppo_peak_accumulation,
    "memory_back_to_baseline": memory_back_to_baseline,
    "step_times": step_times,
}


# ---------------------------------------------------------------------------------------------------------
# Running them, and the report


def machine() -> dict:
    import torch
    import transformers

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    try:
        import flash_attn  # noqa: F401

        flash = True
    except Exception:  # not installed, or built for another torch
        flash = False
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    info.update(transformers=transformers.__version__, trl=version("trl"), liger_kernel=version("liger-kernel"))
    for package in ("datasets", "accelerate", "peft", "huggingface_hub", "triton"):
        info[package] = version(package)
    info.update(flash_attn_imports=flash, gpu=None)
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(
            gpu=properties.name,
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            memory_gib=properties.total_memory / GIB,
            bf16_native=torch.cuda.is_bf16_supported(including_emulation=False),
        )
    with contextlib.suppress(Exception):  # what llmrl would choose here for a bf16 run
        from llmrl.config import load_config
        from llmrl.hardware import detect_hardware

        info["llmrl_hardware"] = detect_hardware(load_config(sets=["model=builtin:small"])).summary()
    return info


def run_check(ctx: Context, name: str) -> dict:
    """One check in its own try/except and time; an error is recorded by its first line, and the run goes on."""
    from llmrl.errors import first_line

    if ctx.out_of_time():
        return {"status": OUT_OF_TIME, "seconds": 0.0}
    started = time.perf_counter()
    try:
        result = CHECKS[name](ctx)
    except Exception as e:
        traceback.print_exc(limit=-6)
        result = {"status": "error", "error": f"{type(e).__name__}: {first_line(e)}"}
    release_memory()
    return {**result, "seconds": time.perf_counter() - started}


def write_json(path: Path, report: dict) -> None:
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(report, indent=2, default=str) + "\n")
    staging.replace(path)


def shown(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "/".join(map(str, value))
    return str(value)


def figures_of(result: dict) -> str:
    """A check's figures in one line (null ones left out): its row of the table and its printed line."""
    skip = {"status", "note", "seconds", "estimate_parts_gib", "rehearsal"}
    figures = [f"{key} {shown(value)}" for key, value in result.items() if key not in skip and value is not None]
    return ", ".join(figures) or "-"


def markdown(report: dict) -> str:
    """The table for docs/benchmarks.md's GPU section: the machine in a sentence, then one row per check."""
    m = report["machine"]
    if m.get("gpu"):
        gpu = f"{m['gpu']} (compute capability {m['capability']}, {m['memory_gib']:.0f} GiB"
        gpu += f", bf16 native: {'yes' if m['bf16_native'] else 'no'})"
    else:
        gpu = "no GPU (a CPU rehearsal)"
    packages = ", ".join(f"{name} {m.get(name)}" for name in ("torch", "transformers", "trl", "liger_kernel"))
    lines = [
        f"{gpu}; {packages}, flash-attn {'yes' if m.get('flash_attn_imports') else 'no'}; {report['date'][:10]}, "
        f"{report['total_seconds']:.0f} s in all (`scripts/gpu_check.py`).",
        "",
        "| check | status | figures | s |",
        "|---|---|---|---:|",
    ]
    for name, result in report["checks"].items():
        lines.append(f"| {name} | {result['status']} | {figures_of(result)} | {result.get('seconds', 0):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".gpu_check", help="folder for gpu_check.json")
    parser.add_argument("--only", help="comma-separated checks to run (default: all): " + ",".join(CHECKS))
    parser.add_argument("--budget-seconds", type=float, default=420.0, help="checks left after this are skipped")
    parser.add_argument("--work", help="scratch folder for models and runs (default: a new one in the temp dir)")
    parser.add_argument("--markdown", metavar="FILE.json", help="print a gpu_check.json as a Markdown table")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    names = args.only.split(",") if args.only else list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        parser.error(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")

    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    try:
        report["machine"] = machine()
    except Exception as e:  # torch or transformers do not import: say so in the JSON, the checks will too
        traceback.print_exc()
        report["machine"] = {"error": f"{type(e).__name__}: {e}"}
    report.update(budget_seconds=args.budget_seconds, total_seconds=0.0, checks={})
    print("machine:", json.dumps(report["machine"]))
    write_json(out / "gpu_check.json", report)
    time_metric_records()
    ctx = Context(work, args.budget_seconds - (time.monotonic() - started))
    try:
        for name in names:
            result = report["checks"][name] = run_check(ctx, name)
            report["total_seconds"] = time.monotonic() - started
            write_json(out / "gpu_check.json", report)
            elapsed = f"{result['seconds']:5.1f} s, {report['total_seconds']:3.0f} s in all"
            print(f"[{elapsed}] {name}: {result['status']}  {figures_of(result)}", flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    summary = ", ".join(f"{name} {result['status']}" for name, result in report["checks"].items())
    print(
        f"\n{markdown(report)}\n\ngpu_check: {report['total_seconds']:.0f} s; {summary}; wrote {out / 'gpu_check.json'}"
    )


if __name__ == "__main__":
    main()
