"""The Python API (issue 18): the README's example runs as written, and its functions do what the CLI does."""

import json
import re
from pathlib import Path

import pytest

import llmrl
from llmrl import LlmrlError, TrainingConfig

README = Path(__file__).parent.parent / "README.md"


def readme_example() -> str:
    section = README.read_text().split("### From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(tmp_path, capsys):
    exec(compile(readme_example(), "README.md", "exec"), {})

    printed = capsys.readouterr().out.strip().splitlines()[-1]
    run = Path(printed.split()[0])
    info = json.loads((run / "run_info.json").read_text())
    assert [info["stages"][s]["status"] for s in ("sft", "dpo", "eval")] == ["completed"] * 3
    dpo = json.loads((run / "dpo" / "run_info.json").read_text())["config"]
    assert dpo["model"] == str(run / "sft" / "final") and dpo["trl"] == {"optim": "adafactor"}
    assert (run / "eval" / "leaderboard.json").is_file()
    assert 0 <= float(printed.split()[1]) <= 1  # the win rate of the single-stage model over its start
    singles = list(Path("runs").glob("sft-*/final"))
    assert len(singles) == 1
    eval_runs = list(Path("runs").glob("eval-*/results.json"))
    assert json.loads(eval_runs[0].read_text())["reference"] == "builtin:tiny"  # read from the run's run_info


def test_train_takes_keys_and_errors_are_llmrl_errors(tmp_path):
    final = llmrl.train(model="builtin:tiny", dataset="builtin:sft", max_steps=1, output_dir=str(tmp_path / "a"))
    assert (final / "model.safetensors").is_file()
    with pytest.raises(LlmrlError, match="unknown config key 'max_step'"):
        llmrl.train(model="builtin:tiny", dataset="builtin:sft", max_step=1)
    with pytest.raises(LlmrlError, match="two stages are --method sft"):
        llmrl.run_pipeline([TrainingConfig(model="builtin:tiny"), TrainingConfig(model="builtin:tiny")])
