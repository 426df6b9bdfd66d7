"""Padding-free batches (llmrl.padding_free): the same loss, metrics and gradients as the padded batch TRL
builds, on the built-in pretrained model, for SFT, reward modeling, DPO and KTO; and off, with a log line, for
a model whose attention cannot keep packed sequences apart."""

import importlib
import json
import logging

import pytest
import torch

from llmrl.config import load_config
from llmrl.padding_free import first_fit_decreasing, is_padding_free, pack

SETS = ["model=builtin:small", "dataset=pairs.jsonl", "output_dir=out", "group_by_length=false"]
METRICS = {  # what each trainer logs from the forward pass, beside the loss
    "sft": ("entropy", "mean_token_accuracy", "num_tokens"),
    "reward": ("accuracy", "margin", "mean_reward", "min_reward", "max_reward", "num_tokens"),
    "dpo": ("rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logits/chosen", "entropy"),
    "kto": ("rewards/chosen", "rewards/rejected", "logps/chosen", "logits/chosen", "kl", "entropy"),
}


@pytest.fixture(autouse=True)
def variable_length_pairs(tmp_path):
    write_variable_length_data(tmp_path)


def write_variable_length_data(folder, count: int = 32, longest: int = 50) -> None:
    """Pairs (pairs.jsonl) and chats (chats.jsonl) of very different lengths (a few long ones among short
    ones, as in real data), so that a padded batch is mostly padding."""
    rows = []
    for i in range(count):
        terms = longest if i % 8 == 0 else 1 + i % 5
        question = {"role": "user", "content": "Add " + " + ".join(["1"] * terms) + "."}
        rows.append(
            {
                "prompt": [question],
                "chosen": [{"role": "assistant", "content": f"{terms}"}],
                "rejected": [{"role": "assistant", "content": f"{terms + 1} because " + "1 " * (i % 7)}],
            }
        )
    (folder / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    chats = [{"messages": row["prompt"] + row["chosen"]} for row in rows]
    (folder / "chats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chats))


def step(trainer, batch) -> tuple[torch.Tensor, dict, dict]:
    """(loss, the metrics it logged, every trainable parameter's gradient) of one training micro-batch."""
    trainer.model.train()
    trainer.model.zero_grad()
    for values in trainer._metrics["train"].values():
        values.clear()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if v}
    return loss.detach(), metrics, grads


@pytest.mark.parametrize(
    "method,lora", [("sft", False), ("dpo", False), ("kto", False), ("reward", True), ("dpo", True)]
)
def test_padding_free_batches_are_the_padded_batches(method, lora):
    module = importlib.import_module(f"llmrl.methods.{method}")
    sets = [*SETS, f"method={method}", f"lora.enabled={lora}"]
    if method == "sft":
        sets.append("dataset=chats.jsonl")
    padded = module.build_trainer(load_config(sets=[*sets, "padding_free=false"]))
    packed = module.build_trainer(load_config(sets=sets))  # the default: on
    assert is_padding_free(packed.model) and not is_padding_free(padded.model)
    packed.model.load_state_dict(padded.model.state_dict())  # (a reward model's new score head is seeded anyway)

    rows = [padded.train_dataset[i] for i in range(len(padded.train_dataset))]
    rows.sort(key=lambda row: int(padded.data_collator([row])["attention_mask"].sum()))
    batch = padded.data_collator([rows[-1], *rows[:7]])  # one long pair among short ones
    mask = batch["attention_mask"]
    packing = pack(mask)
    assert packing is not None and packing.packed_shape[0] * packing.packed_shape[1] < 0.75 * mask.numel()

    loss, metrics, grads = step(padded, batch)
    packed_loss, packed_metrics, packed_grads = step(packed, batch)
    assert torch.allclose(loss, packed_loss, rtol=1e-5, atol=1e-6), (loss, packed_loss)
    for name in METRICS[method]:
        assert packed_metrics[name] == pytest.approx(metrics[name], rel=1e-4, abs=1e-5), name
    assert grads.keys() == packed_grads.keys() and grads
    for name, grad in grads.items():
        assert torch.allclose(grad, packed_grads[name], rtol=1e-4, atol=1e-6), name
    # real gradients, not zeros on both sides (LoRA's A matrices get none at first: B starts at zero)
    assert sum(bool(grad.abs().sum() > 0) for grad in grads.values()) >= len(grads) / 2


def test_a_model_that_ignores_packed_positions_is_trained_padded(caplog):
    """A model whose modeling code builds its attention mask without transformers' masking utilities (here:
    Llama's, with them taken away) would let packed sequences attend to each other: padded batches, said in
    one log line; padding_free=true is then an error."""
    from transformers.models.llama import modeling_llama

    from llmrl.errors import LlmrlError
    from llmrl.methods import dpo

    saved = modeling_llama.create_causal_mask
    try:
        del modeling_llama.create_causal_mask  # a model whose attention mask ignores position ids
        with caplog.at_level(logging.INFO, logger="llmrl"):
            trainer = dpo.build_trainer(load_config(sets=[*SETS, "method=dpo"]))
        assert not is_padding_free(trainer.model)
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("padded batches")]
        assert len(lines) == 1 and "ignores packed position ids" in lines[0]
        with pytest.raises(LlmrlError, match="padding_free=true cannot be honoured"):
            dpo.build_trainer(load_config(sets=[*SETS, "method=dpo", "padding_free=true"]))
    finally:
        modeling_llama.create_causal_mask = saved


def test_packing_puts_every_real_token_once_in_rows_no_longer_than_the_longest():
    lengths = [5, 1, 3, 2, 4, 5, 1]
    mask = torch.tensor([[1] * n + [0] * (5 - n) for n in lengths])
    packing = pack(mask)
    rows, capacity = packing.packed_shape
    assert (rows, capacity) == (5, 5)  # 5 | 5 | 4+1 | 3+2 | 1 (21 tokens need 5 rows of 5): 25 positions, not 35
    values = torch.arange(mask.numel()).view(mask.shape) + 1
    packed = packing.to_packed(values, 0)
    assert sorted(packed[packed > 0].tolist()) == sorted(values[mask.bool()].tolist())
    assert torch.equal(packing.to_padded(packed) * mask, values * mask)
    # positions restart at 0 for each sequence, in the order of its tokens
    positions = packing.to_padded(packing.position_ids)
    assert torch.equal(positions * mask, (torch.arange(5) * mask))
    assert pack(torch.tensor([[0, 1, 1], [1, 1, 1]])) is None  # left padding: run as it is
    assert pack(torch.tensor([[1, 1, 1], [1, 1, 0]])) is None  # nothing to gain: one sequence per row
    assert first_fit_decreasing([3, 3, 2, 2], 5) == [[0, 2], [1, 3]]


def test_the_moved_sft_key_names_its_new_name():
    from llmrl.errors import LlmrlError

    with pytest.raises(LlmrlError, match="unknown config key 'sft.padding_free'; it is now padding_free"):
        load_config(sets=["sft.padding_free=false"])


def test_pairs_are_grouped_by_length_when_that_computes_less():
    """group_by_length None: padded batches are always grouped; packed ones only when grouping computes on
    fewer positions (similar lengths); mixed lengths fill packed rows better at random."""
    import random
    from types import SimpleNamespace

    from llmrl.trl_args import group_pairs_by_length

    def grouped(pairs, packed, setting=None):
        args = SimpleNamespace(train_batch_size=8, gradient_accumulation_steps=1, seed=0)
        return group_pairs_by_length(SimpleNamespace(args=args), pairs, setting, packed)

    rng = random.Random(0)
    similar = [(rng.randint(27, 49), rng.randint(27, 49)) for _ in range(400)]  # like builtin:preference
    mixed = [(n, n + rng.randint(0, 9)) for n in (int(20 * 15 ** rng.random()) for _ in range(400))]  # 20-300
    assert grouped(similar, packed=False) and grouped(mixed, packed=False)
    assert grouped(similar, packed=True) and not grouped(mixed, packed=True)
    assert not grouped(similar, packed=True, setting=False) and grouped(mixed, packed=True, setting=True)


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_online_rl_log_prob_passes_packed_are_the_padded_ones(method):
    """GRPO's and RLOO's batches (left-padded prompts, right-padded completions) packed into rows: the same
    reference log-probabilities, loss and gradients as TRL's padded forward (positions restart at each
    sequence's first token, as in generation; with rotary embeddings the attention is the same)."""
    module = importlib.import_module(f"llmrl.methods.{method}")
    sets = ["model=builtin:small", "dataset=builtin:prompts", "output_dir=out", f"method={method}",
            "rewards=[length]", "reward_fns.length_target=8", "per_device_train_batch_size=8", "rl.num_generations=4",
            "rl.beta=0.2",
            "rl.max_completion_length=24", "rl.temperature=1.5"]  # fmt: skip
    padded = module.build_trainer(load_config(sets=[*sets, "padding_free=false"]))
    packed = module.build_trainer(load_config(sets=sets))
    assert is_padding_free(packed.model) and not is_padding_free(padded.model)
    for trainer in (padded, packed):
        trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps  # set by train()
    rows = [padded.train_dataset[i] for i in (0, 1) for _ in range(4)]  # two prompts, four completions each
    torch.manual_seed(0)
    inputs = padded._generate_and_score_completions(rows)
    inputs["advantages"] = torch.linspace(-1.0, 1.0, len(rows))  # whatever the rewards: gradients to compare
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    assert not mask[:, 0].all() and not mask[:, -1].all()  # padding on both sides
    packing = pack(mask, row_length=256)
    assert packing is not None and packing.packed_shape[0] < mask.shape[0]
    keep = inputs["completion_ids"].size(1)
    reference = [t._get_per_token_logps_and_entropies(t.ref_model, ids, mask, keep)[0] for t in (padded, packed)]
    completion = inputs["completion_mask"].bool()
    assert torch.allclose(reference[0][completion], reference[1][completion], atol=1e-5)
    (loss, _, grads), (packed_loss, _, packed_grads) = step(padded, inputs), step(packed, inputs)
    assert torch.allclose(loss, packed_loss, rtol=1e-5, atol=1e-6), (loss, packed_loss)
    assert grads.keys() == packed_grads.keys() and sum(bool(g.abs().sum() > 0) for g in grads.values()) > len(grads) / 2
    for name, grad in grads.items():
        assert torch.allclose(grad, packed_grads[name], rtol=1e-4, atol=1e-6), name
