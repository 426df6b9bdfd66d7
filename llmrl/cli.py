"""The ``llmrl`` command line. Commands parse their options and hand over; the work happens elsewhere.

Heavy libraries (torch, transformers, datasets, trl) are imported only inside commands that run, so that
``llmrl --help`` answers at once.
"""

import sys
from contextlib import contextmanager
from pathlib import Path

import typer

from llmrl.config import METHODS, load_config
from llmrl.errors import LlmrlError

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
):
    state["debug"] = debug


@contextmanager
def reported_errors():
    """Turn exceptions into one line on stderr and a non-zero exit; ``--debug`` shows the traceback instead."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        if state["debug"]:
            raise
        typer.echo("error: interrupted", err=True)
        raise typer.Exit(130) from None
    except LlmrlError as e:
        if state["debug"]:
            raise
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except Exception as e:
        if state["debug"]:
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        typer.echo(f"error: {type(e).__name__}: {message} (rerun with --debug for the traceback)", err=True)
        raise typer.Exit(1) from None


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
        if print_config:
            typer.echo(cfg.to_yaml(), nl=False)
            return
        from llmrl.runner import method_module, run_training

        method_module(cfg.method)  # an unimplemented method fails before anything heavy is imported
        final = run_training(cfg)
        typer.echo(f"final model: {final}")


@app.command("init-model")
def init_model(
    preset: str = typer.Option("tiny", help="Built-in preset: tiny (tests) or small (benchmarks, demo)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder to write the model and tokenizer to."),
):
    """Build a small Llama-architecture model and its tokenizer offline, from installed packages only."""
    with reported_errors():
        from llmrl.builtin import write_builtin

        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise LlmrlError(f"{output} already exists and is not an empty folder; choose a new one")
        write_builtin(preset, output)
        typer.echo(f"wrote builtin:{preset} to {output}")


def main() -> None:
    app(prog_name="llmrl")


if __name__ == "__main__":
    sys.exit(main())
