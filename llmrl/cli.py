"""The ``llmrl`` command line. Commands parse their options and hand over; the work happens elsewhere.

Heavy libraries (torch, transformers, datasets, trl) are imported only inside commands that run, so that
``llmrl --help`` answers at once.
"""

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import typer

from llmrl.config import METHODS, load_config
from llmrl.errors import LlmrlError, first_line, redact_secrets

app = typer.Typer(
    name="llmrl",
    help="Post-train language models: SFT, reward modeling, DPO and online RL (GRPO, RLOO, PPO), on top of TRL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
state = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        from llmrl import __version__

        typer.echo(f"llmrl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback when a command fails."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the llmrl version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only: no progress, no info."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Everything, third-party messages and progress bars included."
    ),
):
    state["debug"] = debug
    if quiet and verbose:
        typer.echo("error: --quiet and --verbose contradict each other: choose one", err=True)
        raise typer.Exit(2)
    if quiet or verbose:  # read by llmrl.console, here and in the processes a launcher starts
        os.environ["LLMRL_LOG_LEVEL"] = "quiet" if quiet else "verbose"


@contextmanager
def reported_errors():
    """Turn exceptions into one line on stderr and a non-zero exit; ``--debug`` shows the traceback instead."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except BrokenPipeError:  # the reader went away (llmrl ... | head): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        if state["debug"]:
            raise
        say("error: interrupted")
        raise typer.Exit(130) from None
    except LlmrlError as e:
        if state["debug"]:
            raise
        close_progress_bars()
        if os.environ.get("RANK", "0") == "0":  # every process of a distributed run has the same mistake to report
            say(f"error: {e}")
        raise typer.Exit(getattr(e, "exit_code", 2)) from None  # a run stopped by a signal: 130 or 143
    except Exception as e:
        if state["debug"]:
            raise
        close_progress_bars()
        if type(e).__name__ == "OutOfMemoryError":  # torch's; named here so that the CLI need not import torch
            say(f"error: out of GPU memory ({first_line(e)}); {OUT_OF_MEMORY_REMEDIES}")
        elif isinstance(e, PermissionError) and e.filename:
            say(f"error: permission denied on {e.filename}: make it writable or choose another path")
            raise typer.Exit(2) from None
        elif isinstance(e, OSError) and e.filename and e.strerror:
            say(f"error: {e.strerror}: {e.filename} (rerun with --debug for the traceback)")
        else:
            say(f"error: {type(e).__name__}: {first_line(e)} (rerun with --debug for the traceback)")
        raise typer.Exit(1) from None


def say(line: str) -> None:
    """One line on stderr, without credentials (a URL's user:password@, anything shaped like an API key)."""
    typer.echo(redact_secrets(line), err=True)


OUT_OF_MEMORY_REMEDIES = (
    "try a smaller per_device_train_batch_size (with more gradient_accumulation_steps), "
    "gradient_checkpointing=true, a shorter max_length, or LoRA (lora.enabled=true, lora.quantize=4bit)"
)


def close_progress_bars() -> None:
    """End any progress bar a failed run left open, so that the error starts on a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", [])):
        bar.close()


@app.command()
def train(
    method: str | None = typer.Option(
        None, "--method", "-m", help=f"Training method: {', '.join(METHODS)} (default: sft)."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of config values."),
    model: str | None = typer.Option(None, help="Hub name, local folder, or builtin:tiny / builtin:small."),
    dataset: str | None = typer.Option(
        None, help="Hub name, local file or folder, or builtin:sft / builtin:preference / builtin:prompts."
    ),
    split: str | None = typer.Option(None, help="Split to train on (default: train)."),
    output_dir: str | None = typer.Option(None, help="Where the run is written (default: runs/METHOD-DATE-TIME)."),
    max_steps: int | None = typer.Option(None, help="Stop after this many optimizer steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --output-dir."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished or interrupted run in --output-dir."),
    sets: list[str] = typer.Option(
        [],
        "--set",
        "-s",
        help="Any config key: --set learning_rate=1e-5, --set lora.r=16, --set report_to=[tensorboard].",
    ),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    explain: bool = typer.Option(
        False, "--explain", help="With --print-config: every key with its default, value and what it does."
    ),
    launcher: str = typer.Option("local", help="local (this process), accelerate, or ray (a Ray Train cluster)."),
    num_processes: int | None = typer.Option(
        None, help="Run N processes through accelerate launch (one per GPU; gloo on a CPU machine)."
    ),
    accelerate_config: Path | None = typer.Option(
        None, help="An accelerate config file, e.g. configs/accelerate/deepspeed_zero3.yaml (implies accelerate)."
    ),
    num_workers: int = typer.Option(2, help="--launcher ray: the number of Ray Train workers."),
    ray_address: str | None = typer.Option(
        None, help="--launcher ray: the cluster to join, e.g. ray://head:10001 (default: start a local one)."
    ),
    use_gpu: bool = typer.Option(False, "--use-gpu", help="--launcher ray: one GPU per worker."),
):
    """Train one stage: defaults < --config YAML < flags and --set."""
    with reported_errors():
        flags = dict(
            method=method,
            model=model,
            dataset=dataset,
            split=split,
            output_dir=output_dir,
            max_steps=max_steps,
            resume=resume or None,
            overwrite=overwrite or None,
        )
        cfg = load_config(config, flags=flags, sets=sets)
        if print_config and explain:
            print_explained_config(cfg)
            return
        if print_config:
            typer.echo(redact_secrets(cfg.to_yaml()), nl=False)  # (an api:URL's credentials are never shown)
            return
        if explain:
            raise LlmrlError("--explain goes with --print-config")
        from llmrl.launch import Launch, launch  # imports TRL's trainers: after the config is known to be good

        how = Launch(launcher, num_processes, accelerate_config, num_workers, ray_address, use_gpu)
        final = launch(cfg, how, debug=state["debug"])
        if os.environ.get("RANK", "0") == "0" and "LLMRL_LAUNCHED_BY" not in os.environ:  # one process reports
            typer.echo(f"final model: {final}")


def print_explained_config(cfg) -> None:
    """One line per key: name, value (with the default when it differs) and its help, never wrapped."""
    from llmrl.config import explain

    for key, default, value, note in explain(cfg):
        shown = json.dumps(value, default=str)
        if value != default:
            shown += f" (default {json.dumps(default, default=str)})"
        typer.echo(redact_secrets(f"{key} = {shown}" + (f"  # {note}" if note else "")))


@app.command("init-model")
def init_model(
    preset: str = typer.Option("tiny", help="Built-in preset: tiny (random weights, for tests) or small (pretrained)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder to write the model and tokenizer to."),
    pretrain: bool = typer.Option(
        False, "--pretrain", help="small: pretrain it from scratch (about 30 min on 2 CPU cores) instead of copying."
    ),
):
    """Write a built-in Llama-architecture model and its tokenizer to a folder, offline."""
    with reported_errors():
        from llmrl.builtin import write_builtin

        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise LlmrlError(f"{output} already exists and is not an empty folder; choose a new one")
        if pretrain:
            if preset != "small":
                raise LlmrlError(f"--pretrain makes builtin:small; builtin:{preset} is not pretrained")
            from llmrl.pretrain import make

            make(output)  # into a staging folder, renamed to output when done
        else:
            write_builtin(preset, output)
        typer.echo(f"wrote builtin:{preset} to {output}")


@app.command()
def merge(
    adapter: Path = typer.Option(..., help="A LoRA adapter folder, e.g. runs/sft/final of a run with lora.enabled."),
    output: Path = typer.Option(..., "--output", "-o", help="New folder for the merged model and tokenizer."),
    base: str | None = typer.Option(None, help="Base model (default: the one named in adapter_config.json)."),
):
    """Merge a LoRA adapter into its base model and save a standalone model and tokenizer."""
    with reported_errors():
        from llmrl.merge import merge_adapter

        typer.echo(f"merged model: {merge_adapter(adapter, output, base)}")


@app.command("eval")
def eval_command(
    model: str = typer.Option(..., help="The model to evaluate, e.g. runs/dpo/final."),
    judge: str = typer.Option(..., help="reward_model:PATH, api:URL, accuracy, or any other reward spec."),
    reference: str | None = typer.Option(None, help="The model to compare with (default: the run's starting model)."),
    dataset: str | None = typer.Option(
        None, help="Prompts: any dataset the data layer reads (default: ultrafeedback)."
    ),
    split: str | None = typer.Option(
        None, help="Held-out split (default: test; test_prefs for ultrafeedback; a single file's only split)."
    ),
    num_prompts: int = typer.Option(200, help="Prompts to answer (shuffled with --seed)."),
    output_dir: str | None = typer.Option(None, help="Where results.json and samples.jsonl go."),
    max_new_tokens: int = typer.Option(256, help="Longest response, in tokens."),
    temperature: float = typer.Option(0.0, help="Sampling temperature; 0 decodes greedily."),
    batch_size: int = typer.Option(16, help="Prompts generated or scored at once."),
    seed: int | None = typer.Option(None, help="Seed of the prompt sample, the decoding and the bootstrap."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML with api.*, reward_fns.*, data.* keys."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Config keys, e.g. --set api.model=NAME."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results in --output-dir."),
):
    """Compare a model with a reference on held-out prompts (win rate, rewards, intervals), judged by a reward spec."""
    with reported_errors():
        flags = dict(model=model, dataset=dataset, split=split, output_dir=output_dir, seed=seed)
        cfg = load_config(config, flags=flags, sets=sets)
        from llmrl.api import evaluate
        from llmrl.console import setup_console_logging

        setup_console_logging()
        results = evaluate(
            model,
            judge,
            reference=reference,
            num_prompts=num_prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            batch_size=batch_size,
            overwrite=overwrite,
            config=cfg,
        )
        print_eval_table(results)


def print_eval_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{results['model']} vs {results['reference']}, judged by {results['judge']}")
    table.add_column("figure")
    table.add_column("mean", justify="right")
    table.add_column("95% interval", justify="right")
    names = ["win_rate", "win_probability", "model_reward", "reference_reward", "reward_improvement"]
    for name in (n for n in names if n in results):
        low, high = results[name]["ci95"]
        table.add_row(name.replace("_", " "), f"{results[name]['mean']:.4g}", f"[{low:.4g}, {high:.4g}]")
    for role, length in results["mean_length"].items():
        table.add_row(f"{role} response length (words)", f"{length:.1f}", "")
    asked = results.get("num_prompts_asked", results["num_prompts"])
    fewer = f" (asked for {asked}; the split has no more)" if asked > results["num_prompts"] else ""
    table.caption = f"{results['scored_prompts']} of {results['num_prompts']} prompts scored{fewer}"
    Console().print(table)


@app.command(help=f"Run post-training stages in order ({', '.join(METHODS)}, eval), each feeding the next.")
def pipeline(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="A pipeline file, e.g. configs/pipelines/test.yaml."
    ),
    test: bool = typer.Option(False, "--test", help="Run the offline built-in pipeline (configs/pipelines/test.yaml)."),
    stages: str | None = typer.Option(None, help="Comma-separated stages to run, e.g. sft,reward,dpo (default: all)."),
    resume: Path | None = typer.Option(None, "--resume", help="A run folder to finish: done stages are skipped."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Folder for a new run (default: runs/<run id>)."),
    launcher: str = typer.Option("local", help="How training stages run: local, accelerate or ray."),
    num_processes: int | None = typer.Option(None, help="Processes per training stage, through accelerate."),
    accelerate_config: Path | None = typer.Option(None, help="An accelerate config file for every training stage."),
    num_workers: int = typer.Option(2, help="--launcher ray: Ray Train workers per training stage."),
    ray_address: str | None = typer.Option(None, help="--launcher ray: the cluster to join (default: a local one)."),
    use_gpu: bool = typer.Option(False, "--use-gpu", help="--launcher ray: one GPU per worker."),
):
    with reported_errors():
        from llmrl.launch import Launch
        from llmrl.pipeline import load_pipeline, run_pipeline

        how = Launch(launcher, num_processes, accelerate_config, num_workers, ray_address, use_gpu)

        if test and config:
            raise LlmrlError("--test runs configs/pipelines/test.yaml: give either --test or --config")
        if resume and run_dir:
            raise LlmrlError("--resume names the run folder already: drop --run-dir")
        if not (config or test or resume):
            raise LlmrlError("name a pipeline: --config configs/pipelines/NAME.yaml, --test, or --resume RUN_DIR")
        if resume and not config:
            info = resume / "run_info.json"
            if not info.is_file():
                raise LlmrlError(f"--resume {resume}: not an llmrl pipeline run folder (no run_info.json)")
            config = Path(json.loads(info.read_text())["source"])
        config = config or Path(__file__).resolve().parent.parent / "configs" / "pipelines" / "test.yaml"
        selected = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
        if resume and selected is None and (resume / "run_info.json").is_file():  # keep the run's stages
            selected = json.loads((resume / "run_info.json").read_text()).get("selected_stages")
        loaded = load_pipeline(config, selected)
        finished = run_pipeline(loaded, run_dir=resume or run_dir, resume=resume is not None, how=how)
        from llmrl.report import print_summary, write_plots

        print_summary([finished])
        plots = write_plots([finished])
        typer.echo(f"plots: {plots[0].parent}/ ({len(plots)} PNG)" if plots else "plots: none (no metrics)")
        typer.echo(f"run folder: {finished}")


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., help="One run folder, or two to overlay."),
):
    """Summarise a pipeline run (or compare two) and write PNG plots of each stage's metrics into the run folder."""
    with reported_errors():
        from llmrl.report import print_summary, write_plots

        if len(runs) > 2:
            raise LlmrlError("llmrl report takes one run folder, or two to overlay")
        print_summary(runs)
        for path in write_plots(runs):
            typer.echo(f"plot: {path}")


@app.command()
def runs(
    folder: Path = typer.Argument(Path("runs"), help="The folder that holds the runs (default: runs/)."),
    watch: bool = typer.Option(False, "--watch", help="Refresh every 2 seconds until Ctrl-C."),
):
    """Every run in FOLDER, newest first: status (running, completed, failed, interrupted), steps, time."""
    with reported_errors():
        import time

        from rich.console import Console
        from rich.live import Live

        from llmrl.runs import list_runs, runs_table

        if not folder.is_dir():
            raise LlmrlError(f"{folder} is not a folder of runs (pipelines and single runs write into runs/)")
        console = Console(highlight=False)
        if not watch:
            rows = list_runs(folder)
            console.print(runs_table(rows, folder) if rows else f"no runs in {folder}")
            return
        try:
            with Live(runs_table(list_runs(folder), folder), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(2)
                    live.update(runs_table(list_runs(folder), folder), refresh=True)
        except KeyboardInterrupt:
            return


data_app = typer.Typer(help="Look at datasets the way llmrl will read them.", no_args_is_help=True)
app.add_typer(data_app, name="data")
SEGMENT_STYLES = {
    "prompt": "dim",
    "trained": "bold green",
    "chosen": "bold green",
    "rejected": "bold red",
    "desirable": "bold green",
    "undesirable": "bold red",
}


@data_app.command("inspect")
def data_inspect(
    dataset: str = typer.Option(..., help="Hub name, short name, local file or folder, or builtin:NAME."),
    method: str = typer.Option("sft", help=f"The method whose data to prepare: {', '.join(METHODS)}, eval."),
    model: str | None = typer.Option(None, help="The model whose tokenizer to use (default: builtin:tiny)."),
    split: str | None = typer.Option(None, help="Split to inspect (default: the training split for the method)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of config values (data.*, max_length)."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Config keys, e.g. --set data.columns.prompt=instruction."),
):
    """Show the detected schema, the rows each step kept, token lengths, and one example as the model sees it."""
    with reported_errors():
        from llmrl.methods import METHOD_KINDS

        if method not in METHOD_KINDS:
            raise LlmrlError(f"unknown method '{method}'; methods: {', '.join(METHOD_KINDS)}")
        cfg = load_config(config, flags=dict(dataset=dataset, model=model, split=split), sets=sets)
        cfg.model = cfg.model or "builtin:tiny"
        from rich.console import Console
        from rich.markup import escape

        from llmrl.console import setup_console_logging
        from llmrl.data.prepare import inspect_dataset

        setup_console_logging()  # datasets' and transformers' bars and messages off the screen

        report, segments = inspect_dataset(cfg, METHOD_KINDS[method])
        out = Console(highlight=False, soft_wrap=True)
        out.print(f"[bold]dataset[/]     {escape(report.dataset)}  split {escape(report.split)}  as {report.kind} data")
        out.print(f"[bold]schema[/]      {escape(report.schema)}  (columns: {escape(', '.join(report.columns))})")
        mapping = ", ".join(f"{k} <- {v}" for k, v in report.mapping.items()) or "none"
        out.print(f"[bold]mapping[/]     {escape(mapping)}")
        out.print(f"[bold]tokenizer[/]   {escape(cfg.model)}")
        out.print(f"[bold]template[/]    {escape(report.template.summary().removeprefix('chat template: '))}")
        for problem in report.template.errors + report.template.warnings:
            out.print(f"  [bold red]problem:[/] {escape(problem)}")
        out.print("[bold]rows[/]        " + " -> ".join(f"{escape(step)}: {rows}" for step, rows in report.counts))
        for reason, rows in report.dropped.items():
            out.print(f"  dropped {rows}: {escape(reason)}")
        for note, rows in report.notes.items():
            out.print(f"  {escape(note)} ({rows} messages)")
        for column in report.unread:
            out.print(f"  [bold red]unread:[/] {escape(report.unread_note(column))}")
        for name, lengths in (("prompt", report.prompt_lengths), ("full", report.total_lengths)):
            out.print(f"[bold]tokens[/]      {name:<6} " + "  ".join(f"{k} {v}" for k, v in lengths.items()))
        out.print(f"[bold]max_length[/]  {report.max_length} ({escape(report.max_length_note)})")
        out.print("\n[bold]example[/] (first row)")
        for label, text in segments:
            style = SEGMENT_STYLES.get(label, "cyan")
            out.print(f"[{style}]--- {label} ---[/]")
            out.print(f"[{style}]{escape(text)}[/]")


def main() -> None:
    from llmrl.dotenv import load_dotenv

    load_dotenv()  # API keys and tracker settings from ./.env (see .env.example); existing variables win
    app(prog_name="llmrl")


if __name__ == "__main__":
    sys.exit(main())
