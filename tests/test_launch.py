"""Scale-out: several processes through accelerate, Ray Train workers, and the shipped accelerate configs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import tiny_train_args
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from llmrl.cli import app

ROOT = Path(__file__).resolve().parent.parent
ACCELERATE_CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))
runner = CliRunner()


def check_distributed_run(output_dir: Path) -> None:
    """Two processes took part, each on its own shard of the data, and the run was written once."""
    info = json.loads((output_dir / "run_info.json").read_text())
    assert info["world_size"] == 2 and info["status"] == "completed"
    ranks = json.loads((output_dir / "ranks.json").read_text())["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["examples"] > 0 for r in ranks)
    assert not set(ranks[0]["first_examples"]) & set(ranks[1]["first_examples"])  # different shards
    records = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == sorted(set(steps)) and steps[0] == 1  # each record logged once, not once per process
    assert (output_dir / "train.log").read_text().count("saved the final model") == 1
    assert not list(output_dir.glob(".final-staging*"))
    AutoModelForCausalLM.from_pretrained(output_dir / "final")


def test_shipped_accelerate_configs_are_valid():
    """Each file loads as accelerate's own launch would read it, and every nested key is one it knows."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    shipped = {"single_gpu", "multi_gpu", "deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_offload", "fsdp2"}
    assert shipped <= {path.stem for path in ACCELERATE_CONFIGS}
    parser = launch_command_parser()
    known = {action.dest for action in parser._actions}
    expected = {"deepspeed_zero2": 2, "deepspeed_zero3": 3, "deepspeed_zero3_offload": 3}
    for path in ACCELERATE_CONFIGS:
        config = load_config_from_file(str(path))
        for section in ("deepspeed_config", "fsdp_config"):
            unknown = set(yaml.safe_load(path.read_text()).get(section, {})) - known
            assert not unknown, f"{path.name}: {section} keys accelerate does not know: {unknown}"
        args, _, _ = _validate_launch_command(parser.parse_args(["--config_file", str(path), "-m", "llmrl", "train"]))
        if path.stem in expected:
            assert args.use_deepspeed and int(args.zero_stage) == expected[path.stem]
            assert (args.offload_param_device == "cpu") == path.stem.endswith("offload")
        if path.stem == "fsdp2":
            assert args.use_fsdp and int(args.fsdp_version) == 2
        if path.stem == "multi_gpu":
            assert args.multi_gpu and config.distributed_type == "MULTI_GPU"


@pytest.mark.slow
def test_sft_in_two_processes_through_num_processes(tmp_path):
    """`llmrl train --num-processes 2` launches through accelerate (gloo on CPU) and reports once."""
    out = tmp_path / "sft"
    command = [sys.executable, "-m", "llmrl", *tiny_train_args("builtin:sft", out, "--max-steps", "3")]
    command += ["--num-processes", "2", "--set", "logging_steps=1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("final model:") == 1
    check_distributed_run(out)


@pytest.mark.slow
def test_dpo_under_accelerate_launch(tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2 -m llmrl train --method dpo` runs unchanged."""
    out = tmp_path / "dpo"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["-m", "llmrl", *tiny_train_args("builtin:preference", out, "--method", "dpo", "--max-steps", "3")]
    result = subprocess.run(command + ["--set", "logging_steps=1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("final model:") == 1
    check_distributed_run(out)


@pytest.fixture
def ray_cluster():
    """A local Ray cluster of 2 CPUs, started by the test (workers inherit the test's offline environment)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_sft_on_a_local_ray_cluster(tmp_path, ray_cluster):
    out = tmp_path / "sft"
    args = tiny_train_args("builtin:sft", out, "--max-steps", "3", "--launcher", "ray", "--num-workers", "2")
    result = runner.invoke(app, [*args, "--set", "logging_steps=1"])
    assert result.exit_code == 0, result.output
    assert f"final model: {out.resolve() / 'final'}" in result.output
    check_distributed_run(out)


@pytest.mark.slow
def test_pipeline_stages_on_a_local_ray_cluster(tmp_path, ray_cluster):
    """`llmrl pipeline --launcher ray`: every training stage runs on the Ray workers; DPO starts from SFT."""
    pipeline = {
        "name": "ray",
        "defaults": {"model": "builtin:tiny", "max_steps": 2, "logging_steps": 1},
        "stages": {"sft": {"dataset": "builtin:sft"}, "dpo": {"dataset": "builtin:preference"}},
    }
    (tmp_path / "ray.yaml").write_text(yaml.safe_dump(pipeline))
    run_dir = tmp_path / "run"
    command = ["pipeline", "--config", str(tmp_path / "ray.yaml"), "--run-dir", str(run_dir), "--launcher", "ray"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["launcher"]["launcher"] == "ray" and info["launcher"]["num_workers"] == 2
    for stage in ("sft", "dpo"):
        check_distributed_run(run_dir / stage)
    dpo_info = json.loads((run_dir / "dpo" / "run_info.json").read_text())
    assert Path(dpo_info["config"]["model"]).resolve() == (run_dir / "sft" / "final").resolve()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--launcher", "slurm"], "unknown --launcher 'slurm'; launchers: local, accelerate, ray"),
        (["--num-processes", "0"], "invalid --num-processes: 0 (expected 1 or more)"),
        (["--launcher", "ray", "--num-processes", "2"], "--launcher ray takes --num-workers"),
        (["--use-gpu"], "--ray-address and --use-gpu go with --launcher ray"),
        (["--launcher", "accelerate"], "--launcher accelerate needs --num-processes N or --accelerate-config FILE"),
        (["--accelerate-config", "nowhere.yaml"], "accelerate config not found: nowhere.yaml"),
        (["--launcher", "ray", "--ray-address", "head"], "invalid --ray-address 'head' (expected HOST:PORT"),
        (["--launcher", "ray", "--ray-address", "127.0.0.1:1"], "could not reach the Ray cluster at 127.0.0.1:1"),
    ],
)
def test_launch_options_are_checked(tmp_path, extra, message):
    result = runner.invoke(app, [*tiny_train_args("builtin:sft", tmp_path / "out"), *extra])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {message}" or message in result.output.splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_ray_launcher_without_ray_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees where Ray is not installed
    result = runner.invoke(app, tiny_train_args("builtin:sft", tmp_path / "out", "--launcher", "ray"))
    assert result.exit_code == 2
    assert "error: --launcher ray needs Ray Train: pip install 'llmrl[ray]'" in result.output
    assert not (tmp_path / "out").exists()


def test_nested_launch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = runner.invoke(app, tiny_train_args("builtin:sft", tmp_path / "out", "--num-processes", "2"))
    assert result.exit_code == 2
    assert "already running under a distributed launcher" in result.output


def test_ppo_refuses_deepspeed_and_fsdp(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # what accelerate launch sets for a DeepSpeed config
    args = tiny_train_args("builtin:prompts", tmp_path / "out", "--method", "ppo", "--set", "rewards=[length]")
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--method ppo runs under data parallel, not deepspeed" in result.output
    assert not (tmp_path / "out").exists()
