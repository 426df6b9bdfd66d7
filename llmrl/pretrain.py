"""Pretraining ``builtin:small``: a toy base model for offline checks, made by a fixed, seeded recipe.

A byte-level BPE tokenizer (digits always split one per token) is trained on the synthetic corpus of
``llmrl/corpus.py``; then a Llama-architecture model of about 2M parameters is trained from random weights for
``RECIPE.steps`` steps on packed rows of corpus documents (each document sees only itself: position ids start
again at every document), with Muon on the hidden weight matrices and AdamW on the embeddings and norms, a short
warmup and a cosine decay. Everything is seeded and runs on ``RECIPE.threads`` CPU threads, so that the run
is the same each time on the same kind of CPU; ``pretrain_log.jsonl`` records the loss of every logged step and
the SHA-256 of the weights it wrote, and ``probe`` measures what the model can do, skill by skill.

llmrl ships the result in ``llmrl/models/small/``. To make it again (about 25 minutes on 2 CPU cores):

    python -m llmrl.pretrain --output /tmp/small        # then compare with llmrl/models/small/
"""

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from llmrl.builtin import CHAT_TEMPLATE, SPECIAL_TOKENS
from llmrl.corpus import SKILLS, documents, word_list

SHIPPED = Path(__file__).parent / "models" / "small"
LOG_NAME = "pretrain_log.jsonl"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the weights: change any of it and the shipped model must be made again."""

    vocab_size: int = 1536
    hidden_size: int = 192
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    seq_len: int = 256  # tokens per packed row
    batch_size: int = 8  # rows per step
    steps: int = 5000
    warmup_steps: int = 50
    muon_lr: float = 0.008
    adamw_lr: float = 3e-3
    final_lr_fraction: float = 0.1  # the cosine decay ends at this fraction of the peak rates
    seed: int = 0  # of the weights and of the training documents
    tokenizer_seed: int = 1  # of the documents the tokenizer is trained on
    tokenizer_documents: int = 20000
    threads: int = 2
    log_every: int = 10


RECIPE = Recipe()


# ---------------------------------------------------------------------------------------------------------
# Tokenizer


def build_tokenizer(recipe: Recipe = RECIPE):
    """Byte-level BPE trained on corpus documents (nothing is unknown; every digit is a token of its own),
    with llmrl's ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_size,
        special_tokens=[*SPECIAL_TOKENS.values(), "<|im_start|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [*documents(recipe.tokenizer_seed, recipe.tokenizer_documents), " ".join(word_list())]
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, **SPECIAL_TOKENS, additional_special_tokens=["<|im_start|>"]
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# ---------------------------------------------------------------------------------------------------------
# Data: packed rows of documents


def packed_rows(tokenizer, recipe: Recipe = RECIPE):
    """Endless (input_ids, position_ids, labels) batches of ``batch_size`` rows of ``seq_len`` tokens. Documents
    are packed whole (one that does not fit starts the next row; the rest of the row is padding); position ids
    start at 0 at every document, so that attention stays within it, and no document's first token is
    predicted from the one before it."""
    import torch

    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    stream = documents(recipe.seed, 10**12)

    def encoded():
        while True:
            texts = [next(stream) for _ in range(512)]
            for text, ids in zip(texts, tokenizer(texts, add_special_tokens=False)["input_ids"], strict=True):
                yield (ids if text.endswith("\n") else ids + [eos])[: recipe.seq_len]  # chat ends in <|im_end|>\n

    docs = encoded()
    pending = next(docs)
    while True:
        ids, positions = [], []
        for _ in range(recipe.batch_size):
            row, row_positions = [], []
            while len(row) + len(pending) <= recipe.seq_len:
                row += pending
                row_positions += range(len(pending))
                pending = next(docs)
            padding = recipe.seq_len - len(row)
            ids.append(row + [pad] * padding)
            positions.append(row_positions + list(range(padding)))
        input_ids, position_ids = torch.tensor(ids), torch.tensor(positions)
        labels = input_ids.masked_fill((input_ids == pad) | (position_ids == 0), -100)
        yield input_ids, position_ids, labels


# ---------------------------------------------------------------------------------------------------------
# Optimizer


def orthogonalize(gradient, steps: int = 5):
    """Muon's Newton-Schulz iteration: the nearest semi-orthogonal matrix to ``gradient``, approximately."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = gradient / (gradient.norm() + 1e-7)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def muon_step(parameters, state: dict, lr: float, momentum: float = 0.95) -> None:
    """One Muon update (momentum with Nesterov, then orthogonalized, scaled for the matrix's shape)."""
    import torch

    with torch.no_grad():
        for p in parameters:
            buffer = state.setdefault(p, torch.zeros_like(p))
            buffer.mul_(momentum).add_(p.grad)
            update = orthogonalize(p.grad.add(buffer, alpha=momentum))
            p.add_(update, alpha=-lr * max(1.0, p.size(0) / p.size(1)) ** 0.5)


def learning_rate_factor(step: int, recipe: Recipe = RECIPE) -> float:
    warmup = min(1.0, (step + 1) / recipe.warmup_steps)
    progress = min(1.0, step / recipe.steps)
    return warmup * (
        recipe.final_lr_fraction + (1 - recipe.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
    )


# ---------------------------------------------------------------------------------------------------------
# The run


def new_model(tokenizer, recipe: Recipe = RECIPE):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_hidden_layers,
        num_attention_heads=recipe.num_attention_heads,
        num_key_value_heads=recipe.num_key_value_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(recipe.seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return model


def train(tokenizer, recipe: Recipe = RECIPE, steps: int | None = None, log=None):
    """The pretrained model after ``steps`` (default ``recipe.steps``) steps; ``log(record)`` is called every
    ``log_every`` steps with the step, its loss, the learning-rate factor and the time so far."""
    import torch

    torch.set_num_threads(recipe.threads)
    model = new_model(tokenizer, recipe)
    model.train()
    matrices = [p for name, p in model.named_parameters() if p.ndim == 2 and "embed" not in name]
    others = [p for name, p in model.named_parameters() if not (p.ndim == 2 and "embed" not in name)]
    adamw = torch.optim.AdamW(others, lr=recipe.adamw_lr, betas=(0.9, 0.95), weight_decay=0.0)
    muon_state: dict = {}
    batches = packed_rows(tokenizer, recipe)
    started, losses = time.monotonic(), []
    for step in range(steps if steps is not None else recipe.steps):
        factor = learning_rate_factor(step, recipe)
        input_ids, position_ids, labels = next(batches)
        # use_cache=False: with a cache transformers ignores the packed position ids and attends across documents
        loss = model(input_ids=input_ids, position_ids=position_ids, labels=labels, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in adamw.param_groups:
            group["lr"] = recipe.adamw_lr * factor
        adamw.step()
        muon_step(matrices, muon_state, recipe.muon_lr * factor)
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if log and ((step + 1) % recipe.log_every == 0 or step == 0):
            window = losses[-recipe.log_every :]
            log(
                {
                    "step": step + 1,
                    "loss": losses[-1],
                    "mean_loss": sum(window) / len(window),
                    "lr_factor": factor,
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
    return model.eval()


def probe(model, tokenizer, per_skill: int = 50, seed: int = 12345) -> dict[str, float]:
    """Greedy accuracy on new questions of each corpus skill, asked as a one-turn chat: what the model can do."""
    import torch

    rng, scores = random.Random(seed), {}
    tokenizer.padding_side = "left"
    for skill in SKILLS:
        facts = [skill(rng) for _ in range(per_skill)]
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": f.question}], tokenize=False, add_generation_prompt=True
            )
            for f in facts
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(**batch, max_new_tokens=32, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answers = tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        scores[skill.__name__] = (
            sum(answer_matches(a, f.answer) for a, f in zip(answers, facts, strict=True)) / per_skill
        )
    scores["mean"] = sum(scores.values()) / len(scores)
    return scores


def answer_matches(answer: str, gold: str) -> bool:
    """A number is right when it is the answer's final number (after '####' if any); words must appear."""
    final = answer.rsplit("####", 1)[-1]
    if re.fullmatch(r"-?\d+", gold):
        numbers = re.findall(r"-?\d+", final)
        return bool(numbers) and numbers[-1] == gold
    return gold.lower() in answer.lower()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make(output: Path, recipe: Recipe = RECIPE, quiet: bool = False) -> Path:
    """Pretrain into ``output`` (a new or empty folder): model, tokenizer, ``pretrain_log.jsonl`` and
    ``probe.json``. The files are written to a staging folder beside it, renamed into place when all are done,
    so an interrupted run leaves no half-made model behind."""
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(f"{output} already exists and is not an empty folder")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        tokenizer = build_tokenizer(recipe)
        with (staging / LOG_NAME).open("w") as log_file:
            log_file.write(json.dumps({"recipe": asdict(recipe)}) + "\n")

            def log(record):
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                if not quiet:
                    print(
                        f"step {record['step']:5d}  loss {record['mean_loss']:.4f}  {record['seconds']:.0f} s",
                        flush=True,
                    )

            model = train(tokenizer, recipe, log=log)
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            log_file.write(json.dumps({"weights_sha256": file_sha256(staging / "model.safetensors")}) + "\n")
        scores = probe(model, tokenizer)
        (staging / "probe.json").write_text(json.dumps(scores, indent=2) + "\n")
        if output.exists():
            output.rmdir()
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not quiet:
        print("probe: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
    return output


def read_log(path: Path) -> tuple[dict, list[dict], str | None]:
    """(recipe, step records, weights SHA-256) of a ``pretrain_log.jsonl``."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    recipe = lines[0]["recipe"]
    steps = [line for line in lines if "step" in line]
    sha = next((line["weights_sha256"] for line in lines if "weights_sha256" in line), None)
    return recipe, steps, sha


def main() -> None:
    parser = argparse.ArgumentParser(description="Pretrain builtin:small from scratch (about 30 min on 2 cores).")
    parser.add_argument("--output", type=Path, required=True, help="a new folder for the model")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        make(args.output)
    except FileExistsError as e:
        raise SystemExit(f"error: {e}; choose a new folder") from None


if __name__ == "__main__":
    main()
