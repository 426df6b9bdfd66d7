"""Turn a dataset split into what a method trains on, and say what was done to it.

``prepare_dataset`` loads the split, applies ``data.columns`` and ``data.language``, recognises the schema and
normalizes every row (``schemas``), measures tokenized lengths with the model's tokenizer, resolves
``max_length: auto`` (the 95th percentile, capped by the model's context), and drops the examples whose prompt
takes more than ``data.max_prompt_fraction`` of ``max_length``. The ``DataReport`` it returns records each
step's row count, so that a run's log and ``llmrl data inspect`` can show where rows went.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmrl.builtin import model_config
from llmrl.chat_template import TemplateCheck, accepts_system_messages, check_template
from llmrl.data import schemas
from llmrl.data.sources import default_split, load_split
from llmrl.errors import LlmrlError
from llmrl.loading import load_tokenizer

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig

logger = logging.getLogger("llmrl")
details = logging.getLogger("llmrl.details")  # the run log only
AUTO_PERCENTILE = 95
SOURCE = "_source_"  # prefix of the source columns while rows are normalized


@dataclass
class DataReport:
    """What happened to one split on its way to the trainer."""

    dataset: str
    split: str
    kind: str  # sft, preference or prompt
    schema: str = ""
    columns: list[str] = field(default_factory=list)  # the columns found, after data.columns
    mapping: dict[str, str] = field(default_factory=dict)  # data.columns as applied
    system_role: bool = True  # the chat template renders system messages (else they are joined to the user's)
    template: TemplateCheck | None = None  # the chat template's preflight (llmrl.chat_template), for data inspect
    counts: list[tuple[str, int]] = field(default_factory=list)  # (step, rows left after it)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows dropped
    notes: dict[str, int] = field(default_factory=dict)  # what was read in another form (role names...) -> messages
    unread: list[str] = field(default_factory=list)  # text columns the schema leaves unread (said, not silent)
    prompt_lengths: dict[str, int] = field(default_factory=dict)  # p50, p95, max (tokens)
    total_lengths: dict[str, int] = field(default_factory=dict)
    max_length: int = 0
    max_length_note: str = ""

    def unread_note(self, column: str) -> str:
        return (
            f"column '{column}' is not read by the {self.schema} schema: map it (--set data.columns.NAME={column}) "
            "or leave it out of the file"
        )

    def log(self) -> None:
        steps = ", ".join(f"{name}: {rows}" for name, rows in self.counts)
        length = f"max_length {self.max_length}" + (
            " (default)" if self.max_length_note.startswith("the default") else ""
        )
        logger.info("data %s [%s] as %s (%s): %s; %s", self.dataset, self.split, self.kind, self.schema, steps, length)
        for reason, rows in self.dropped.items():
            logger.info("  dropped %d rows: %s", rows, reason)
        for note, rows in self.notes.items():
            logger.info("  %s (%d messages)", note, rows)
        for column in self.unread:
            logger.warning("  %s", self.unread_note(column))
        details.info("  max_length %d (%s)", self.max_length, self.max_length_note)


def prepare_dataset(cfg: TrainingConfig, tokenizer, kind: str, split: str | None = None, max_length: int | None = None):
    """(normalized and filtered ``datasets.Dataset``, ``DataReport``) for one split.

    ``max_length`` overrides ``cfg.max_length`` (an eval split uses the value resolved on the training split).
    """
    split = split or default_split(cfg, kind)
    report = DataReport(dataset=str(cfg.dataset), split=split, kind=kind, mapping=dict(cfg.data.columns))
    dataset = load_split(cfg, split, kind)
    report.counts.append(("loaded", len(dataset)))

    dataset = apply_column_mapping(dataset, cfg.data.columns)
    report.columns = list(dataset.column_names)
    if cfg.data.language:
        if "language" not in dataset.column_names:
            raise LlmrlError(f"data.language is set but dataset '{cfg.dataset}' has no 'language' column")
        dataset = filter_language(dataset, cfg.data.language, report)

    schema = schemas.detect(dataset.column_names, kind)
    report.schema = schema.name
    report.unread = schemas.unread_columns(dataset.column_names, schema, kind)
    report.system_role = accepts_system_messages(tokenizer)
    dataset = normalize(dataset, schema, kind, report, cfg.data.skip_bad_rows)
    report.counts.append((f"normalized ({schema.name})", len(dataset)))
    _require_rows(dataset, report, "after normalization")

    dataset = dataset.map(lambda batch: _measure(batch, kind, tokenizer), batched=True, desc="Measuring token lengths")
    report.prompt_lengths = percentiles(dataset["_prompt_tokens"])
    report.total_lengths = percentiles(dataset["_total_tokens"])
    requested = cfg.max_length if max_length is None else max_length
    limit = context_limit(cfg, tokenizer) if requested == "auto" else None
    default = next(f.default for f in dataclasses.fields(cfg) if f.name == "max_length")
    report.max_length, report.max_length_note = resolve_max_length(
        requested, report, limit, cfg.data.max_prompt_fraction, default
    )
    limit = math.floor(cfg.data.max_prompt_fraction * report.max_length)
    before = len(dataset)
    dataset = dataset.filter(lambda n: n <= limit, input_columns="_prompt_tokens", desc="Filtering long prompts")
    if len(dataset) < before:
        report.dropped[f"prompt longer than {cfg.data.max_prompt_fraction:.0%} of max_length ({limit} tokens)"] = (
            before - len(dataset)
        )
    report.counts.append((f"prompt <= {limit} tokens", len(dataset)))
    _require_rows(dataset, report, f"after dropping prompts over {limit} tokens (raise max_length?)")
    return dataset.remove_columns(["_prompt_tokens", "_total_tokens"]), report


def prepare_train_eval(cfg: TrainingConfig, tokenizer, kind: str, default_eval_fraction: float | None = None):
    """(train dataset, eval dataset or None, train report), each step logged.

    The eval set is ``eval_split`` when given (prepared with the training split's max_length), else a held-out
    ``data.eval_fraction`` of the training split (``default_eval_fraction`` when that is unset), else None.
    """
    train, report = prepare_dataset(cfg, tokenizer, kind)
    report.log()
    if cfg.eval_split:
        evaluation, eval_report = prepare_dataset(cfg, tokenizer, kind, cfg.eval_split, report.max_length)
        eval_report.log()
        return train, evaluation, report
    fraction = cfg.data.eval_fraction or default_eval_fraction
    if not fraction:
        return train, None, report
    if len(train) < 2:
        raise LlmrlError(f"dataset '{cfg.dataset}' has {len(train)} row: too few to hold out an eval set")
    parts = train.train_test_split(test_size=fraction, seed=cfg.seed)
    logger.info("  held out %d of %d rows (%.0f%%) for evaluation", len(parts["test"]), len(train), fraction * 100)
    return parts["train"], parts["test"], report


def apply_column_mapping(dataset, columns: dict[str, str]):
    """Rename the user's columns to the schema names they stand for (``data.columns.prompt=instruction``)."""
    if not columns:
        return dataset
    missing = [
        f"data.columns.{name}={column}" for name, column in columns.items() if column not in dataset.column_names
    ]
    if missing:
        raise LlmrlError(
            f"{', '.join(missing)}: no such column; the dataset's columns: {', '.join(dataset.column_names)}"
        )
    renames = {column: name for name, column in columns.items() if column != name}
    clashes = [name for name in renames.values() if name in dataset.column_names and name not in renames]
    return dataset.remove_columns(clashes).rename_columns(renames)


def filter_language(dataset, language: str, report: DataReport):
    """Keep the rows whose ``language`` column is ``language``, compared without regard to case or spaces."""
    wanted = language.strip().casefold()
    kept = dataset.filter(
        lambda value: str(value).strip().casefold() == wanted, input_columns="language", desc="Filtering language"
    )
    if len(kept) < len(dataset):
        found = Counter(str(value) for value in dataset["language"])
        others = ", ".join(f"{v} ({n})" for v, n in found.most_common(5) if v.strip().casefold() != wanted)
        report.dropped[f"language is not '{language}' (found: {others})"] = len(dataset) - len(kept)
    report.counts.append((f"language = {language}", len(kept)))
    return kept


def normalize(dataset, schema: schemas.Schema, kind: str, report: DataReport, skip_bad_rows: bool = False):
    """Rows in TRL's format for ``kind``; rows the schema cannot use are dropped and counted by reason. A row
    it cannot read stops with an error naming the row, or with ``skip_bad_rows`` is dropped and counted."""
    drops: Counter = Counter()
    notes: dict[str, int] = {}

    def convert(batch, indices):
        columns = [name.removeprefix(SOURCE) for name in batch]
        rows = [dict(zip(columns, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        out = []
        for index, row in zip(indices, rows, strict=True):
            try:
                example = schemas.read_row(schema, row, kind, notes)
                out.append(schemas.render(example, kind, report.system_role, notes))
            except schemas.DropRow as reason:
                drops[str(reason)] += 1
            except schemas.BadRow as e:
                if not skip_bad_rows:
                    raise bad_row_error(e, index, row, schema, kind, report) from None
                drops[f"{e.reason} (data.skip_bad_rows)"] += 1
        return {key: [row[key] for row in out] for key in (out[0] if out else {})}

    # The source columns are renamed so that no output column keeps a source column's feature type (datasets
    # would, and a `Json` content column would decode an answer "4" as the number 4). Not cached: the drop
    # counts come from running the function.
    source = dataset.rename_columns({name: SOURCE + name for name in dataset.column_names})
    normalized = source.map(
        convert,
        with_indices=True,
        batched=True,
        remove_columns=source.column_names,
        load_from_cache_file=False,
        desc="Normalizing",
    )
    report.dropped.update(drops)
    report.notes.update(notes)
    return normalized


def bad_row_error(error, index: int, row: dict, schema: schemas.Schema, kind: str, report: DataReport) -> LlmrlError:
    """The error for the first row the schema cannot read: which row, what is wrong, and what to do."""
    other = schemas.other_schema(row, kind, schema)
    mixed = f"; this row has the columns of another schema ({other.name}): one file holds one schema" if other else ""
    return LlmrlError(
        f"dataset '{report.dataset}' split '{report.split}' row {index + 1}: {error} (rows read as {schema.name}"
        f"{mixed}); fix the row, or set data.skip_bad_rows=true to drop such rows"
    )


def _measure(batch, kind: str, tokenizer) -> dict[str, list[int]]:
    """Token counts of each row's prompt and of its longest full example (prompt + answer)."""
    columns = list(batch)
    prompts, totals = [], []
    for values in zip(*batch.values(), strict=True):
        prompt_text, full_texts = rendered_texts(dict(zip(columns, values, strict=True)), kind, tokenizer)
        prompts.append(count_tokens(tokenizer, prompt_text))
        totals.append(max((count_tokens(tokenizer, t) for t in full_texts), default=prompts[-1]))
    return {"_prompt_tokens": prompts, "_total_tokens": totals}


def rendered_texts(row: dict, kind: str, tokenizer) -> tuple[str, list[str]]:
    """(the prompt as the model sees it, each full example as the model sees it) for a normalized row."""
    if "text" in row:
        return "", [row["text"]]
    if "messages" in row:
        first_answer = next((i for i, m in enumerate(row["messages"]) if m["role"] == "assistant"), None)
        prompt = row["messages"][:first_answer]
        return chat_text(tokenizer, prompt, True), [chat_text(tokenizer, row["messages"], False)]
    if kind == "prompt":
        answers = []  # the other columns (answer, solution, even a completion) are data for reward functions
    else:
        answers = [row["completion"]] if "completion" in row else [row["chosen"], row["rejected"]]
    return chat_text(tokenizer, row["prompt"], True), [chat_text(tokenizer, row["prompt"] + a, False) for a in answers]


def chat_text(tokenizer, messages, add_generation_prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as e:
        raise LlmrlError(
            f"the chat template could not render a row ({type(e).__name__}: {e}); first messages: {messages[:2]!r:.120}"
        ) from e


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0


def percentiles(values: list[int]) -> dict[str, int]:
    """p50, p95 (nearest rank, rounded up) and max of a list of token counts."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": 0, "p95": 0, "max": 0}

    def rank(p: int) -> int:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {"p50": rank(50), "p95": rank(AUTO_PERCENTILE), "max": ordered[-1]}


def resolve_max_length(
    requested: int | str, report: DataReport, limit: int | None, prompt_fraction: float, default: int = 1024
) -> tuple[int, str]:
    """(max_length, how it was chosen): a number as given, or ``auto``: the 95th percentile, capped by the model.

    Prompt-only data has no answers to measure: there ``auto`` leaves room for completions by making the
    95th-percentile prompt fill ``prompt_fraction`` of max_length.
    """
    if requested != "auto":
        is_default = requested == default
        return int(requested), "the default; max_length=auto fits it to the data" if is_default else "as set"
    if report.kind == "prompt":
        picked = math.ceil(report.prompt_lengths["p95"] / prompt_fraction)
        how = f"auto: p{AUTO_PERCENTILE} prompt length / data.max_prompt_fraction"
    else:
        picked = report.total_lengths["p95"]
        how = f"auto: p{AUTO_PERCENTILE} of the tokenized training examples"
    picked = max(picked, 1)
    if limit is not None and picked > limit:
        return limit, f"{how} is {picked}, capped by the model's context of {limit}"
    return picked, how


def context_limit(cfg: TrainingConfig, tokenizer) -> int | None:
    """The longest input the model takes: its config's max_position_embeddings, or the tokenizer's limit."""
    limits = []
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and model_max < 10**8:  # tokenizers without a limit report a huge sentinel
        limits.append(model_max)
    if cfg.model:
        config = model_config(cfg.model, cfg.trusts_code_of(cfg.model))
        if getattr(config, "max_position_embeddings", None):
            limits.append(int(config.max_position_embeddings))
    return min(limits) if limits else None


def _require_rows(dataset, report: DataReport, when: str) -> None:
    if len(dataset) == 0:
        reasons = "; ".join(f"{n} {reason}" for reason, n in report.dropped.items()) or "no reason recorded"
        read = f"; read as {report.schema} from the columns {', '.join(report.columns)}" if report.schema else ""
        hint = "; map the right column with --set data.columns.prompt=COLUMN (llmrl data inspect shows the rows)"
        raise LlmrlError(
            f"dataset '{report.dataset}' split '{report.split}' has no rows left {when} ({reasons}){read}"
            f"{hint if 'prompt' in reasons else ''}"
        )


def example_segments(row: dict, kind: str, tokenizer) -> list[tuple[str, str]]:
    """One normalized row as the model sees it, in labelled pieces: prompt, trained (on), chosen, rejected,
    and for prompt-only data the columns kept beside the prompt."""
    if "text" in row:
        return [("trained", row["text"])]
    if kind == "kto" and "label" in row:
        prompt_text, (full,) = rendered_texts(row, kind, tokenizer)
        return [("prompt", prompt_text), ("desirable" if row["label"] else "undesirable", full[len(prompt_text) :])]
    if kind == "sft":
        messages = row["messages"] if "messages" in row else row["prompt"] + row["completion"]
        segments, done = [], ""
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = chat_text(tokenizer, messages[:i], True)
            after = chat_text(tokenizer, messages[: i + 1], False)
            segments += [("prompt", before[len(done) :]), ("trained", after[len(before) :])]
            done = after
        return segments
    prompt_text, full_texts = rendered_texts(row, kind, tokenizer)
    if kind in ("preference", "kto"):
        chosen, rejected = (text[len(prompt_text) :] for text in full_texts)
        return [("prompt", prompt_text), ("chosen", chosen), ("rejected", rejected)]
    return [("prompt", prompt_text), *((f"column {k}", str(v)) for k, v in row.items() if k != "prompt")]


def inspect_dataset(cfg: TrainingConfig, kind: str) -> tuple[DataReport, list[tuple[str, str]]]:
    """The report of preparing ``cfg.dataset`` for ``kind``, and the first prepared row in labelled pieces."""
    tokenizer = load_tokenizer(cfg, strict=False)
    dataset, report = prepare_dataset(cfg, tokenizer, kind)
    report.template = check_template(tokenizer)  # (a run checks it once, in load_tokenizer's preflight)
    return report, example_segments(dataset[0], kind, tokenizer)
