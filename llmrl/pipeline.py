"""``llmrl pipeline``: the stages of post-training in order, each feeding the next, in one run folder.

A pipeline file (``configs/pipelines/*.yaml``) has ``defaults`` (TrainingConfig keys shared by every training
stage) and ``stages``, a mapping from stage name to its own keys. Stages run in the order of ``STAGES``:

- SFT's ``final/`` is the starting model of reward, DPO, KTO, GRPO, RLOO and PPO, and eval's reference;
- the reward model's ``final/`` is the reward of RLOO and PPO and eval's judge, unless a stage names others;
- eval compares every policy stage (or those of ``policies: [NAME, ...]``) with its reference, the SFT model
  (the SFT model itself with the model it started from), and writes one results folder per policy and a
  leaderboard (``eval/leaderboard.json``).

Every run gets ``runs/<YYYYMMDD_HHMMSS_xxxx>/`` with ``run_info.json`` (stages, config, versions, status and
timings), ``events.log`` (stage starts and ends, checkpoints, warnings), ``console.log`` (everything printed),
and one folder per stage with the method's outputs and its own ``events.log`` and ``console.log``. A failed
stage stops the pipeline and leaves the finished ones as they are; ``--resume RUN_DIR`` skips the stages that
finished and continues the interrupted one from its newest checkpoint.
"""

import contextlib
import datetime
import json
import logging
import os
import secrets
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmrl.config import TrainingConfig, from_dict, read_yaml
from llmrl.console import log_to_file, setup_console_logging
from llmrl.data import eval_split, local_path
from llmrl.errors import LlmrlError, first_line
from llmrl.evaluation import Comparison, EvalSettings, evaluate_all, leaderboard_row
from llmrl.interrupt import TrainingInterrupted
from llmrl.launch import Launch, launch
from llmrl.memory import free_memory
from llmrl.merge import merge_adapter
from llmrl.methods import METHODS, ONLINE_METHODS
from llmrl.outputs import BEST, SELECTION, git_commit, package_versions, write_json
from llmrl.runlock import LOCK_FILE, RunLock

logger = logging.getLogger("llmrl")
STAGES = (*METHODS, "eval")
POLICY_STAGES = tuple(name for name, method in METHODS.items() if method.policy)
STARTS_FROM_SFT = tuple(name for name, method in METHODS.items() if method.starts_from_sft)
REWARDED_BY_RM = tuple(name for name, method in METHODS.items() if method.rewarded_by_reward_model)
EVENT_LOGGERS = (
    "llmrl",
    "llmrl.details",
    "transformers",
)  # events.log: stage starts and ends, checkpoints, warnings; no metrics
EVAL_KEYS = ("judge", "policies", "reference", "num_prompts", "max_new_tokens", "temperature", "batch_size")
PIPELINE_DECIDES = ("method", "output_dir", "resume", "overwrite")  # keys a stage or the defaults may not set
LEADERBOARD = "leaderboard.json"  # in the eval stage's folder: one row per evaluated policy


@dataclass
class Pipeline:
    """A pipeline file, read and checked."""

    name: str
    defaults: dict[str, Any]
    stages: dict[str, dict[str, Any]]  # in STAGES order
    source: Path | None = None
    selected: list[str] = field(default_factory=list)


def load_pipeline(path: str | Path, stages: list[str] | None = None) -> Pipeline:
    """The pipeline file at ``path``, read and checked (``stages``: run only these)."""
    return pipeline_from_dict(read_yaml(path), path, stages)


def pipeline_from_dict(data: dict[str, Any], path: str | Path, stages: list[str] | None = None) -> Pipeline:
    """A pipeline from the contents of a pipeline file (``name``, ``defaults``, ``stages``), checked as a file
    is; ``path`` names it in errors and in run_info.json."""
    unknown = set(data) - {"name", "defaults", "stages"}
    if unknown:
        raise LlmrlError(f"pipeline {path}: unknown top-level keys {sorted(unknown)}; expected name, defaults, stages")
    sections = data.get("stages") or {}
    if not isinstance(sections, dict) or not sections:
        raise LlmrlError(f"pipeline {path}: 'stages' must map stage names to their settings")
    for name in sections:
        if name not in STAGES:
            raise LlmrlError(f"pipeline {path}: unknown stage '{name}'; stages: {', '.join(STAGES)}")
    ordered = {name: dict(sections[name] or {}) for name in STAGES if name in sections}
    selected = list(ordered)
    if stages:
        missing = [s for s in stages if s not in ordered]
        if missing:
            raise LlmrlError(
                f"--stages names {', '.join(missing)}, which {path} does not define ({', '.join(ordered)})"
            )
        selected = [s for s in ordered if s in stages]
    pipeline = Pipeline(
        data.get("name") or Path(path).stem, dict(data.get("defaults") or {}), ordered, Path(path), selected
    )
    for stage, section in [("defaults", pipeline.defaults), *ordered.items()]:
        decided = [key for key in section if key in PIPELINE_DECIDES]
        if decided:
            raise LlmrlError(
                f"pipeline {path}: {stage} sets {', '.join(decided)}, which the pipeline decides (the method is the "
                "stage's name, the output folder the run's stage folder; resume with llmrl pipeline --resume RUN_DIR)"
            )
    for stage, section in ordered.items():
        misplaced = [key for key in section if key in EVAL_KEYS and stage != "eval"]
        if misplaced:
            raise LlmrlError(f"pipeline {path}: stage '{stage}' has eval-only keys {misplaced}; move them under eval")
    if "policy" in ordered.get("eval", {}):
        raise LlmrlError(f"pipeline {path}: eval's 'policy' is now 'policies', a list: policies: [NAME, ...]")
    for stage in ordered:  # every stage's config is checked before anything runs
        cfg = stage_config(pipeline, stage, Path("runs/check"))
        if cfg.model is None and stage != "eval":
            raise LlmrlError(
                f"pipeline {path}: stage '{stage}' has no model to start from; set one under defaults "
                "(defaults: {model: builtin:tiny}) or in the stage"
            )
        if stage != "eval":
            local_path(cfg.dataset)  # a missing dataset file is named before any stage runs
    chosen_policies(pipeline)
    return pipeline


def stage_config(pipeline: Pipeline, stage: str, run_dir: Path) -> TrainingConfig:
    """The TrainingConfig of one stage: defaults, the stage's keys, and what earlier stages feed it."""
    values = {**pipeline.defaults, **{k: v for k, v in pipeline.stages[stage].items() if k not in EVAL_KEYS}}
    values = yaml.safe_load(yaml.safe_dump(values))  # a deep copy
    if feeds(pipeline, "sft", run_dir) and stage in STARTS_FROM_SFT and "model" not in pipeline.stages[stage]:
        values["model"] = str(stage_output(pipeline, "sft", run_dir))
    if feeds(pipeline, "reward", run_dir) and stage in REWARDED_BY_RM and "rewards" not in pipeline.stages[stage]:
        values["rewards"] = [f"reward_model:{stage_output(pipeline, 'reward', run_dir)}"]
    values["method"] = "sft" if stage == "eval" else stage
    values["output_dir"] = str(run_dir / stage)
    values.setdefault("run_name", f"{run_dir.name}-{stage}")
    try:
        return from_dict(TrainingConfig, values)
    except LlmrlError as e:
        raise LlmrlError(f"pipeline stage '{stage}': {e}") from None


def feeds(pipeline: Pipeline, stage: str, run_dir: Path) -> bool:
    """Whether ``stage``'s model reaches later stages: it runs now, or an earlier attempt finished it."""
    if stage not in pipeline.stages:
        return False
    return stage in pipeline.selected or stage_output(pipeline, stage, run_dir).exists()


def stage_section(pipeline: Pipeline, stage: str, name: str) -> dict:
    """A config section (``lora``, ``rl``) as a stage sees it: the defaults' keys, then the stage's own."""
    return {**(pipeline.defaults.get(name) or {}), **(pipeline.stages[stage].get(name) or {})}


def uses_lora(pipeline: Pipeline, stage: str) -> bool:
    return bool(stage_section(pipeline, stage, "lora").get("enabled"))


def stage_output(pipeline: Pipeline, stage: str, run_dir: Path) -> Path:
    """The model a stage hands on: ``final/``, or ``best/`` when its ``rl.hand_on`` says so (an online-RL stage's
    best held-out policy), or ``merged/`` (that adapter merged into its base) for a LoRA stage."""
    return run_dir / stage / ("merged" if uses_lora(pipeline, stage) else handed_on(pipeline, stage))


def handed_on(pipeline: Pipeline, stage: str) -> str:
    """The folder of a stage's run that later stages and eval read: ``final`` or ``best`` (``rl.hand_on``)."""
    best = stage in ONLINE_METHODS and stage_section(pipeline, stage, "rl").get("hand_on") == BEST
    return BEST if best else "final"


def eval_plan(pipeline: Pipeline, run_dir: Path):
    """(EvalSettings, [Comparison]) of the eval stage: each policy to evaluate against its reference."""
    section = pipeline.stages["eval"]
    chosen = chosen_policies(pipeline)
    if chosen is None:  # every policy stage whose model this run has (or will have)
        policies = [s for s in POLICY_STAGES if feeds(pipeline, s, run_dir)]
    else:
        policies = [s for s in POLICY_STAGES if s in chosen]
    if not policies:
        raise LlmrlError("pipeline stage 'eval': no policy stage to evaluate; set eval.policies")
    judge = section.get("judge")
    if judge is None and feeds(pipeline, "reward", run_dir):
        judge = f"reward_model:{stage_output(pipeline, 'reward', run_dir)}"
    if judge is None:
        raise LlmrlError("pipeline stage 'eval' needs a judge (e.g. judge: accuracy), or a reward stage")
    settings = EvalSettings(
        judge=judge,
        **{k: section[k] for k in ("num_prompts", "max_new_tokens", "temperature", "batch_size") if k in section},
        overwrite=True,
    )
    comparisons = []
    for policy in policies:
        reference = section.get("reference")
        if reference is None:  # the SFT model, unless SFT is what is evaluated: then the model it started from
            sft_feeds = policy != "sft" and feeds(pipeline, "sft", run_dir)
            reference = str(stage_output(pipeline, "sft", run_dir)) if sft_feeds else starting_point(pipeline, policy)
        model = str(stage_output(pipeline, policy, run_dir))
        comparisons.append(Comparison(policy, model, str(reference), run_dir / "eval" / policy))
    return settings, comparisons


def chosen_policies(pipeline: Pipeline) -> list[str] | None:
    """The eval stage's ``policies`` (None: not given), checked against the pipeline's policy stages."""
    chosen = pipeline.stages.get("eval", {}).get("policies")
    if chosen is None:
        return None
    chosen = [chosen] if isinstance(chosen, str) else chosen
    if not isinstance(chosen, list) or not chosen:
        raise LlmrlError("pipeline stage 'eval': policies must be a list of stage names, e.g. policies: [dpo, grpo]")
    unknown = [str(s) for s in chosen if s not in POLICY_STAGES or s not in pipeline.stages]
    if unknown:
        defined = [s for s in POLICY_STAGES if s in pipeline.stages]
        raise LlmrlError(
            f"pipeline stage 'eval': policies names {', '.join(unknown)}, which is not a policy stage of this "
            f"pipeline ({', '.join(defined) or 'none'})"
        )
    return chosen


def starting_point(pipeline: Pipeline, stage: str) -> str:
    """The model a stage starts from when no earlier stage feeds it: its own ``model``, else the defaults'."""
    model = pipeline.stages[stage].get("model") or pipeline.defaults.get("model")
    if not model:
        raise LlmrlError(f"pipeline stage 'eval': no reference for '{stage}'; set eval.reference")
    return str(model)


def new_run_dir(root: Path = Path("runs")) -> Path:
    """A new, unique run folder: runs/YYYYMMDD_HHMMSS_xxxx (never an existing one)."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        run_dir = root / f"{datetime.datetime.now():%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue


def run_pipeline(
    pipeline: Pipeline, run_dir: Path | None = None, resume: bool = False, how: Launch | None = None
) -> Path:
    """Run the selected stages into ``run_dir`` (a new run folder unless resuming), each training stage
    launched as ``how`` says (default: in this process); return the run folder."""
    if resume:
        if run_dir is None or not (run_dir / "run_info.json").is_file():
            raise LlmrlError(f"--resume {run_dir}: not an llmrl pipeline run folder (no run_info.json)")
    else:
        run_dir = run_dir or new_run_dir()
        run_dir.mkdir(parents=True, exist_ok=True)
        if any(p.name != LOCK_FILE for p in run_dir.iterdir()):
            raise LlmrlError(f"{run_dir} is not empty: a pipeline run never reuses a folder (use --resume)")
    setup_console_logging()
    with RunLock(run_dir):  # one lock for every stage: they run inside it, or in processes that inherit it
        try:
            return run_locked_pipeline(pipeline, run_dir, resume, how)
        except BaseException:
            if not resume and not any(trained_outputs(run_dir)):  # nothing to resume: leave nothing behind
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


def trained_outputs(run_dir: Path):
    """The checkpoints and final models of a pipeline run's stages."""
    for pattern in ("*/checkpoint-*", "*/final"):
        yield from run_dir.glob(pattern)


def run_locked_pipeline(pipeline: Pipeline, run_dir: Path, resume: bool, how: Launch | None) -> Path:
    info_path = run_dir / "run_info.json"
    if resume:
        info = json.loads(info_path.read_text())
    else:
        info = {
            "pipeline": pipeline.name,
            "source": str(Path(pipeline.source).resolve()) if Path(pipeline.source).exists() else pipeline.source,
            "created": _now(),
            "stages": {},
            "config": {"defaults": pipeline.defaults, "stages": pipeline.stages},
            "versions": package_versions(),
            "git_commit": git_commit(),
            "selected_stages": pipeline.selected,
        }
    info["launcher"] = asdict(how or Launch())  # of the latest attempt
    with tee_output(run_dir / "console.log"), log_to_file(run_dir / "events.log", EVENT_LOGGERS):
        logger.info("pipeline %s: stages %s in %s", pipeline.name, ", ".join(pipeline.selected), run_dir)
        try:
            for number, stage in enumerate(pipeline.selected, 1):
                record = info["stages"].setdefault(stage, {})
                os.environ["LLMRL_STAGE"] = f"{number}/{len(pipeline.selected)}"  # the progress display shows it
                if resume and stage_finished(run_dir / stage, stage):
                    if (
                        stage != "eval"
                        and uses_lora(pipeline, stage)
                        and not stage_output(pipeline, stage, run_dir).exists()
                    ):
                        merge_stage(
                            pipeline, stage, run_dir
                        )  # the earlier attempt stopped between training and merging
                    logger.info("stage %s: finished in an earlier attempt, skipped", stage)
                    continue
                record.update(status="running", start_time=_now(), end_time=None, error=None)
                write_json(info_path, info)
                started = time.monotonic()
                logger.info("stage %s: started (%s)", stage, os.environ["LLMRL_STAGE"])
                stage_dir = run_dir / stage
                stage_dir.mkdir(exist_ok=True)
                try:
                    with tee_output(stage_dir / "console.log"), log_to_file(stage_dir / "events.log", EVENT_LOGGERS):
                        run_stage(pipeline, stage, run_dir, resume, how or Launch())
                    record["status"] = "completed"
                except TrainingInterrupted as e:
                    record.update(status="interrupted", error=first_line(e))
                    logger.error("stage %s stopped by %s", stage, e.signal_name)
                    raise TrainingInterrupted(e.signal_name, e.checkpoint, f"llmrl pipeline --resume {run_dir}") from e
                except BaseException as e:
                    record.update(status="failed", error=f"{type(e).__name__}: {first_line(e)}")
                    logger.error("stage %s failed: %s", stage, record["error"])
                    raise
                finally:
                    record.update(end_time=_now(), wall_seconds=round(time.monotonic() - started, 1))
                    write_json(info_path, info)
                logger.info("stage %s: finished in %.0f s", stage, record["wall_seconds"])
        finally:
            os.environ.pop("LLMRL_STAGE", None)
    return run_dir


def run_stage(pipeline: Pipeline, stage: str, run_dir: Path, resume: bool, how: Launch) -> None:
    cfg = stage_config(pipeline, stage, run_dir)
    stage_dir = run_dir / stage
    if stage == "eval":
        settings, comparisons = eval_plan(pipeline, run_dir)
        missing = [c.model for c in comparisons if not Path(c.model).exists()]
        if missing:
            raise LlmrlError(f"pipeline stage 'eval': no model at {', '.join(missing)} (did its stage run?)")
        cfg.model = comparisons[0].model
        cfg.split = eval_split(cfg)
        try:
            results = evaluate_all(cfg, settings, comparisons)
        finally:
            free_memory()
        write_json(stage_dir / LEADERBOARD, [leaderboard_row(r) for r in results])
        return
    if resume and any(stage_dir.glob("checkpoint-*")):
        cfg.resume = True
    elif stage_dir.exists():
        cfg.overwrite = True  # an attempt that failed before its first checkpoint: start the stage again
    launch(cfg, how)  # frees GPU memory when it ends
    if uses_lora(pipeline, stage):
        merge_stage(pipeline, stage, run_dir)


def merge_stage(pipeline: Pipeline, stage: str, run_dir: Path) -> None:
    """A LoRA stage's adapter merged into its base (``merged/``): later stages start from a whole model."""
    merged = stage_output(pipeline, stage, run_dir)
    shutil.rmtree(merged, ignore_errors=True)
    adapter = run_dir / stage / handed_on(pipeline, stage)
    merge_adapter(adapter, merged)
    if (adapter / SELECTION).is_file():  # the step best/ was kept at, for the leaderboard
        shutil.copy(adapter / SELECTION, merged / SELECTION)
    logger.info("stage %s: adapter (%s/) merged into %s", stage, adapter.name, merged)


def stage_finished(stage_dir: Path, stage: str) -> bool:
    return (stage_dir / (LEADERBOARD if stage == "eval" else "final")).exists()


class _Tee:
    """A stream that also writes into ``copy`` while the copy is open. A logging handler set up during a stage
    keeps the stage's tee after the stage ends: it then writes to the stream alone."""

    def __init__(self, stream, copy):
        self.stream, self.copy = stream, copy

    def write(self, text):
        if not self.copy.closed:
            self.copy.write(text)
        return self.stream.write(text)

    def flush(self):
        if not self.copy.closed:
            self.copy.flush()
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def tee_output(path: Path):
    """Copy everything written to stdout and stderr (progress bars included) into ``path``."""
    with path.open("a") as copy:
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(stdout, copy), _Tee(stderr, copy)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = stdout, stderr


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
