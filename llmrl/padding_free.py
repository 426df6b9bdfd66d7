"""Padding-free forward passes for the trainers that pad their batches: TRL's SFT, reward, DPO and KTO trainers.

TRL pads every sequence of a batch (for preference data: the chosen and the rejected answer of each pair) to
the batch's longest, and on variable-length data more than half of what the model computes is padding. Here the
model's forward is wrapped instead of the trainer: it takes the padded batch the trainer built, moves the
real tokens into as few rows as fit them (first-fit decreasing, each row no longer than the batch's longest
sequence), with position ids that restart at 0 for every sequence, runs the model on those rows and puts each
output back where the padded batch had it. The sequences of a row are kept apart: SDPA and eager attention
build their mask from the position ids (transformers' masking utilities), and flash attention is given the
sequences' boundaries (``cu_seq_lens_*``, ``max_length_*``: transformers reads packed position ids as
boundaries only for a batch of one row, and would otherwise attend across the sequences of a row). So the
log-probabilities, the rewards, the loss and the gradients are the padded batch's; only the compute on padding
is saved. The trainer's own code (its losses, metrics and token counts) runs unchanged.

Under SDPA, rows as long as the longest sequence, not one row for the whole batch: a row's attention costs its
length squared, so one long row would spend on attention what it saves on padding. Flash attention's varlen
kernel costs each sequence its own length squared, so there the whole batch goes into one row.
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass

from llmrl.errors import LlmrlError
from llmrl.lazy import lazy_import

torch = lazy_import("torch")
logger = logging.getLogger("llmrl")

ONLINE_ROW_LENGTH = 256  # tokens per packed row for online RL batches (make_padding_free)
CAUSAL_OUTPUTS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask")
PASSED_ON = {"use_cache", "output_router_logits", "num_items_in_batch"}  # keyword arguments that packing keeps


def reads_packed_positions(model) -> bool:
    """Whether the model keeps examples apart when a row holds several: flash attention, given their
    boundaries, and every model that builds its attention mask with transformers' masking utilities (from
    their position ids). Then padding-free batching is exact and spends nothing on padding."""
    if uses_varlen_attention(model):
        return True
    module = sys.modules.get(type(model).__module__)
    return module is not None and hasattr(module, "create_causal_mask")


def uses_varlen_attention(model) -> bool:
    """Whether the model's attention is flash attention's kind (flash-attn 2/3/4, a hub kernel of it, or any
    implementation registered with its mask): no mask is built, so packed sequences need their boundaries."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

    implementation = model.config._attn_implementation or "sdpa"
    if "flash" in implementation:
        return True
    return ALL_MASK_ATTENTION_FUNCTIONS.get(implementation) is flash_attention_mask


def varlen_kwargs(position_ids: torch.Tensor) -> dict:
    """Flash attention's sequence boundaries in packed rows (flattened, as its varlen kernel reads them): a
    sequence starts wherever the position ids restart at 0."""
    flat = position_ids.reshape(-1)
    starts = (flat == 0).nonzero().view(-1).to(torch.int32)
    cu_seq_lens = torch.cat([starts, torch.tensor([flat.numel()], dtype=torch.int32, device=flat.device)])
    longest = int(cu_seq_lens.diff().max())
    return dict(cu_seq_lens_q=cu_seq_lens, cu_seq_lens_k=cu_seq_lens, max_length_q=longest, max_length_k=longest)


def make_padding_free(trainer, setting: bool | None, model_name: str, row_length: int = 0) -> bool:
    """Wrap the forward of the trainer's model (and its reference model) so that padded batches run without
    their padding. ``setting``: the ``padding_free`` key (None: on when the model supports it; True: an error
    when it does not). ``row_length``: packed rows may be this long even when every sequence is shorter (online
    RL's short sequences: attention over a few hundred positions costs little beside the layers' matmuls).
    Returns whether it is on; when it is off for the model, says so in one log line."""
    if setting is False:
        return False
    models = [unwrap(trainer.model)]
    if getattr(trainer, "ref_model", None) is not None:
        models.append(unwrap(trainer.ref_model))
    scores = hasattr(models[0], "score")  # a reward model: one score per sequence, not per-token log-probs
    reason = unsupported(models[0], scores)
    if reason:
        if setting:
            raise LlmrlError(f"padding_free=true cannot be honoured for {model_name}: {reason}; drop padding_free")
        logger.info("padded batches: %s (padding-free needs a model that reads packed position ids)", reason)
        return False
    for model in models:
        model.forward = score_forward(model) if scores else causal_forward(model, row_length)
    return True


def is_padding_free(model) -> bool:
    """Whether ``model`` (or the transformers model inside it) runs padded batches packed."""
    return getattr(unwrap(model).forward, "packs_padded_batches", False)


def unwrap(model):
    """The transformers model inside a peft model (whose forward the trainers' calls end in)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def unsupported(model, scores: bool) -> str | None:
    """Why padding-free batches would not be exact for this model, or None when they are."""
    from transformers.modeling_layers import GenericForSequenceClassification

    if not reads_packed_positions(model):
        return f"{type(model).__name__} with {model.config._attn_implementation} attention ignores packed position ids"
    if scores and not isinstance(model, GenericForSequenceClassification):
        return f"{type(model).__name__} is not a transformers sequence classifier that llmrl can score packed"
    if scores and model.config.get_text_config().pad_token_id is None:
        return "the model's config has no pad_token_id"
    return None


@dataclass
class Packing:
    """Where each real token of a right-padded (batch, width) tensor goes in the packed (rows, capacity) one."""

    source: torch.Tensor  # flat index of each real token in the padded tensor
    target: torch.Tensor  # its flat index in the packed tensor (same order)
    starts: torch.Tensor  # flat packed index of each sequence's first token
    position_ids: torch.Tensor  # (rows, capacity): restarting at 0 for each sequence and for a row's unused tail
    padded_shape: tuple[int, int]
    packed_shape: tuple[int, int]

    def to_packed(self, padded: torch.Tensor, fill) -> torch.Tensor:
        flat = padded.new_full((self.packed_shape[0] * self.packed_shape[1],), fill)
        flat[self.target] = padded.reshape(-1)[self.source]
        return flat.view(self.packed_shape)

    def to_padded(self, packed: torch.Tensor) -> torch.Tensor:
        """A per-token output of the packed rows, (rows, capacity, ...), where the padded batch has it (zeros
        at padding)."""
        rest = packed.shape[2:]
        flat = packed.new_zeros((self.padded_shape[0] * self.padded_shape[1], *rest))
        flat[self.source] = packed.reshape(-1, *rest)[self.target]
        return flat.view(*self.padded_shape, *rest)

    def padded_to_packed_index(self, padded_index: torch.Tensor) -> torch.Tensor:
        lookup = self.source.new_zeros(self.padded_shape[0] * self.padded_shape[1])
        lookup[self.source] = self.target
        return lookup[padded_index]


def pack(attention_mask: torch.Tensor, one_row: bool = False, row_length: int = 0) -> Packing | None:
    """The packing of a padded batch (``one_row``: all of it in one row, for flash attention), or None when
    there is nothing to gain (every row would hold one sequence) or a row's tokens are not one contiguous run
    (holes), which the caller then runs as it is. Padding may be on either side or both: online RL's batches
    are left-padded prompts followed by right-padded completions. Rows are as long as the longest sequence,
    or ``row_length`` when that is longer."""
    batch, width = attention_mask.shape
    mask = attention_mask.bool()
    lengths = mask.sum(-1)
    columns = torch.arange(width, device=attention_mask.device)
    first_token = torch.where(lengths > 0, mask.int().argmax(-1), 0)
    contiguous = (columns >= first_token[:, None]) & (columns < (first_token + lengths)[:, None])
    if not torch.equal(mask, contiguous):
        return None
    sizes = lengths.tolist()
    capacity = sum(sizes) if one_row else max(*sizes, row_length)
    rows = [list(range(batch))] if one_row else first_fit_decreasing(sizes, capacity)
    if len(rows) == batch or capacity == 0:
        return None
    row_of, column_of, used = [0] * batch, [0] * batch, []
    for r, members in enumerate(rows):
        column = 0
        for b in members:
            row_of[b], column_of[b] = r, column
            column += sizes[b]
        used.append(column)
    device = attention_mask.device
    sequence = torch.repeat_interleave(torch.arange(batch, device=device), lengths)
    first = torch.cumsum(lengths, 0) - lengths  # index of each sequence's first token among the real tokens
    offset = torch.arange(len(sequence), device=device) - first[sequence]  # position within its sequence
    start = torch.tensor(row_of, device=device) * capacity + torch.tensor(column_of, device=device)
    target = start[sequence] + offset
    position_ids = torch.arange(capacity, device=device) - torch.tensor(used, device=device)[:, None]
    position_ids = position_ids.clamp(min=0).reshape(-1)  # a row's unused tail: one more sequence of its own
    position_ids[target] = offset
    return Packing(
        source=sequence * width + first_token[sequence] + offset,
        target=target,
        starts=start,
        position_ids=position_ids.view(len(rows), capacity),
        padded_shape=(batch, width),
        packed_shape=(len(rows), capacity),
    )


def pack_sequences(sizes: list[int]) -> list[list[int]]:
    """The sequences (indices of ``sizes``, their token counts) that each packed row holds: rows no longer than
    the longest sequence, since on SDPA a longer row's attention would cost more than its padding saved."""
    return first_fit_decreasing(sizes, max(sizes))


def first_fit_decreasing(sizes: list[int], capacity: int) -> list[list[int]]:
    """Indices of ``sizes`` grouped into bins of at most ``capacity``, longest first, each into the first bin
    with room: within 22% of the fewest bins possible, in a few microseconds for a batch."""
    bins: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        for b, left in enumerate(room):
            if sizes[index] <= left:
                bins[b].append(index)
                room[b] -= sizes[index]
                break
        else:
            bins.append([index])
            room.append(capacity - sizes[index])
    return bins


def packable(args, kwargs) -> dict | None:
    """The keyword arguments of a forward call that packing can take over (None-valued ones dropped), or
    None when the call holds something it cannot (positional inputs, embeddings, a cache, position ids)."""
    given = {k: v for k, v in kwargs.items() if v is not None}
    if args or given.get("input_ids") is None or given.get("attention_mask") is None:
        return None
    if set(given) - {"input_ids", "attention_mask", "labels", *PASSED_ON}:
        return None
    return given


def causal_forward(model, row_length: int = 0):
    """TRL's fused-LM-head forward (``model(input_ids, attention_mask, labels=..., fused_lm_head=True)``,
    per-token log-probabilities of the labels) run on packed rows. Other calls (generation, logits) run as
    they are."""
    forward, varlen = model.forward, uses_varlen_attention(model)

    @functools.wraps(forward)
    def packed(*args, fused_lm_head=False, **kwargs):
        given = packable(args, kwargs) if fused_lm_head else None
        packing = (
            pack(given["attention_mask"], varlen, row_length) if given and given.get("labels") is not None else None
        )
        if packing is None:
            return forward(*args, fused_lm_head=fused_lm_head, **kwargs)
        labels = packing.to_packed(given.pop("labels"), -100)
        labels.view(-1)[packing.starts] = -100  # a sequence's first token is no target of the token before it
        input_ids = packing.to_packed(given.pop("input_ids"), 0)
        given.pop("attention_mask")
        if varlen:
            given.update(varlen_kwargs(packing.position_ids))
        outputs = forward(
            input_ids=input_ids, position_ids=packing.position_ids, labels=labels, fused_lm_head=True, **given
        )
        for name in CAUSAL_OUTPUTS:  # (rows, capacity - 1): the token at each position predicting the next
            value = getattr(outputs, name)
            if value is not None:
                last = value.new_zeros((value.shape[0], 1))
                setattr(outputs, name, packing.to_padded(torch.cat([value, last], dim=1))[:, :-1])
        return outputs

    packed.packs_padded_batches = True
    return packed


def score_forward(model):
    """A transformers sequence classifier's forward (the reward model's one score per sequence) on packed
    rows: the score head reads the hidden state of the token the classifier would pool in the padded batch
    (its rightmost token that is not the pad token)."""
    from transformers.modeling_outputs import SequenceClassifierOutputWithPast

    forward, varlen = model.forward, uses_varlen_attention(model)
    pad_token_id = model.config.get_text_config().pad_token_id

    @functools.wraps(forward)
    def packed(*args, **kwargs):
        given = packable(args, kwargs)
        packing = pack(given["attention_mask"], varlen) if given and "labels" not in given else None
        if packing is None:
            return forward(*args, **kwargs)
        input_ids = given["input_ids"]
        backbone = getattr(model, model.base_model_prefix)
        boundaries = varlen_kwargs(packing.position_ids) if varlen else {}
        hidden = backbone(
            input_ids=packing.to_packed(input_ids, 0), position_ids=packing.position_ids, use_cache=False, **boundaries
        ).last_hidden_state
        batch, width = input_ids.shape
        columns = torch.arange(width, device=input_ids.device, dtype=torch.int32)
        pooled = (columns * (input_ids != pad_token_id).int()).argmax(-1)  # as GenericForSequenceClassification
        rows = torch.arange(batch, device=input_ids.device) * width + pooled
        logits = model.score(hidden.reshape(-1, hidden.shape[-1])[packing.padded_to_packed_index(rows)])
        return SequenceClassifierOutputWithPast(logits=logits)

    packed.packs_padded_batches = True
    return packed
