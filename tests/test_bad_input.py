"""Bad input through the real command line (issue 12): each case exits non-zero with one clear line.

Every case runs ``llmrl`` in-process and asserts: a non-zero exit without an uncaught exception, exactly one
``error: ...`` line on stderr, naming what is wrong, as the last thing printed there; no traceback; and
nothing half-written: the output folder does not exist afterwards, or the earlier run in it is unchanged.
Arguments and expected words are templates: ``{tmp}`` the test's folder (input files written by
``bad_inputs``), ``{out}`` the output folder, ``{tiny}`` the built-in tiny causal LM, ``{port}`` a closed port;
a tuple of words asks for any one of them.
Out-of-memory is simulated (a GPU run cannot be asked to fail reliably), in its own test below.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmrl.builtin import ensure_builtin
from llmrl.cli import app
from llmrl.errors import LlmrlError, first_line

runner = CliRunner()
TRAIN = ["train", "--model", "builtin:tiny", "--output-dir", "{out}", "--max-steps", "1"]
SFT = [*TRAIN, "--dataset", "builtin:sft"]
RLOO = [*TRAIN, "--method", "rloo", "--dataset", "builtin:prompts"]
GRPO = [*TRAIN, "--method", "grpo", "--dataset", "builtin:prompts"]
EVAL = [
    "eval",
    "--model",
    "builtin:tiny",
    "--reference",
    "builtin:tiny",
    "--dataset",
    "builtin:prompts",
    "--num-prompts",
    "2",
    "--max-new-tokens",
    "4",
    "--batch-size",
    "2",
    "--output-dir",
    "{out}",
]
CLOSED_URL = "http://127.0.0.1:{port}/v1"
API = ["--set", "api.model=judge", "--set", "api.max_retries=0", "--set", "api.timeout=5"]
MISSING_KEY = "LLMRL_TEST_UNSET_API_KEY"


def case(args, words, id, *marks, existing=False, cpu_only=False):
    """One row of the table. ``existing``: the output folder holds a finished run and --overwrite is passed;
    ``cpu_only``: the option is bad input only on a machine without a CUDA GPU (skipped on one)."""
    return pytest.param(args, words, existing, cpu_only, id=id, marks=marks)


CASES = [
    # configuration
    case(["train", "--config", "{tmp}/bad.yaml"], ["bad.yaml", "not valid YAML", "line 3"], "malformed-yaml"),
    case(
        [*SFT, "--set", "learning_rat=1e-5"],
        ["unknown config key 'learning_rat'", "did you mean 'learning_rate'"],
        "unknown-key-flag",
    ),
    case(
        [*SFT, "--config", "{tmp}/typo.yaml"],
        ["unknown config key 'lora.alpah'", "did you mean 'lora.alpha'"],
        "unknown-key-yaml",
    ),
    case([*SFT, "--set", "learning_rate=-1e-5"], ["learning_rate", "-1e-05", "> 0"], "negative-learning-rate"),
    case(
        [*SFT, "--set", "per_device_train_batch_size=0"],
        ["per_device_train_batch_size", "0", "> 0"],
        "zero-batch-size",
    ),
    case([*SFT, "--set", "max_length=4"], ["max_length", "prompt"], "max-length-below-prompt-limit"),
    case(
        [*SFT, "--set", "max_length=4"],
        ["max_length", "prompt"],
        "max-length-below-prompt-limit-existing-run",
        existing=True,
    ),
    case(
        [*SFT, "--config", "{tmp}/twice.yaml"],
        ["twice.yaml", "key 'max_steps' appears twice", "lines 1 and 3"],
        "duplicate-yaml-key",
    ),
    case(
        [*SFT, "--config", "{tmp}/twice_nested.yaml"],
        ["key 'r' appears twice", "lines 2 and 3"],
        "duplicate-nested-yaml-key",
    ),
    case([*SFT, "--config", "{tmp}/latin1.yaml"], ["latin1.yaml", "not UTF-8", "line 1"], "config-not-utf8"),
    # pipeline files
    case(
        ["pipeline", "--config", "{tmp}/twice_pipeline.yaml", "--run-dir", "{out}"],
        ["key 'sft' appears twice"],
        "pipeline-duplicate-stage",
    ),
    case(
        ["pipeline", "--config", "{tmp}/method_pipeline.yaml", "--run-dir", "{out}"],
        ["stage", "method", "the pipeline decides"],
        "pipeline-stage-sets-method",
    ),
    case(
        ["pipeline", "--config", "{tmp}/output_pipeline.yaml", "--run-dir", "{out}"],
        ["defaults sets output_dir", "the pipeline decides"],
        "pipeline-defaults-set-output-dir",
    ),
    case(
        ["pipeline", "--config", "{tmp}/nomodel_pipeline.yaml", "--run-dir", "{out}"],
        ["stage 'sft' has no model", "defaults"],
        "pipeline-without-a-model",
    ),
    case(
        ["pipeline", "--config", "{tmp}/badmodel_pipeline.yaml", "--run-dir", "{out}"],
        ["model folder not found", "no/such/model"],
        "pipeline-model-missing-leaves-no-run",
    ),
    # the model
    case([*SFT, "--model", "{tmp}/no-such-model"], ["model folder not found", "no-such-model"], "model-path-missing"),
    case([*SFT, "--model", "runs/no/such/final"], ["model folder not found", "runs/no/such/final"], "model-relpath"),
    case(
        [*SFT, "--model", "{tmp}/config-only"],
        ["config-only", "no weights", "save_pretrained"],
        "model-folder-with-only-config",
    ),
    case(
        [*SFT, "--model", "{tmp}/no-tokenizer"],
        ["no-tokenizer", "no tokenizer files", "tokenizer.save_pretrained"],
        "model-folder-without-tokenizer",
    ),
    case(
        [*SFT, "--model", "{tmp}/not-a-model"],
        ["not-a-model", ("not a model", "no model", "config.json")],
        "model-folder-not-a-model",
    ),
    case(
        [*SFT, "--model", "{tmp}/not-a-model"],
        ["not-a-model", "model"],
        "model-folder-not-a-model-existing-run",
        existing=True,
    ),
    # the dataset
    case([*TRAIN, "--dataset", "{tmp}/missing.jsonl"], ["not found", "missing.jsonl"], "dataset-missing"),
    case(
        [*TRAIN, "--dataset", "{tmp}/bad.jsonl"],
        ["bad.jsonl", "line 2", "not valid JSON"],
        "dataset-malformed",
    ),
    case(
        [*TRAIN, "--dataset", "{tmp}/bad.jsonl"],
        ["bad.jsonl", "line 2", "not valid JSON"],
        "dataset-malformed-existing-run",
        existing=True,
    ),
    case(
        [*TRAIN, "--dataset", "{tmp}/blank.jsonl"],
        ["blank.jsonl", ("empty", "no rows")],
        "dataset-empty",
    ),
    case(
        [*TRAIN, "--dataset", "{tmp}/odd_columns.jsonl"],
        ["no sft schema matches", "colour", "shape", "messages", "data.columns"],
        "columns-match-no-schema",
    ),
    case(
        [*TRAIN, "--dataset", "{tmp}/odd_columns.jsonl"],
        ["no sft schema matches", "colour", "shape", "data.columns"],
        "columns-match-no-schema-existing-run",
        existing=True,
    ),
    case([*TRAIN, "--dataset", "data/sub/missing"], ["not found", "data/sub/missing"], "dataset-relpath-missing"),
    case([*TRAIN, "--dataset", "{tmp}/latin1.jsonl"], ["latin1.jsonl", "not UTF-8", "line 2"], "dataset-not-utf8"),
    case([*TRAIN, "--dataset", "{tmp}/latin1.csv"], ["latin1.csv", "not UTF-8", "line 2"], "csv-not-utf8"),
    case([*TRAIN, "--dataset", "{tmp}/quote.csv"], ["quote.csv", "line 2", "quotes"], "csv-unclosed-quote"),
    case([*TRAIN, "--dataset", "{tmp}/fields.csv"], ["fields.csv", "line 3", "3 fields"], "csv-extra-field"),
    case(
        [*TRAIN, "--dataset", "{tmp}/image.jsonl"],
        ["image.jsonl", "row 2", "'image_url' part", "skip_bad_rows"],
        "dataset-image-part",
    ),
    case(
        [*TRAIN, "--dataset", "{tmp}/null_row.jsonl"],
        ["null_row.jsonl", "row 2", "null", "skip_bad_rows"],
        "dataset-null-row",
    ),
    case(
        [*TRAIN, "--dataset", "{tmp}/mixed.jsonl"],
        ["row 2", "another schema (prompt + completion)"],
        "dataset-mixed-schemas",
        existing=True,
    ),
    # rewards and judges
    case(
        [*RLOO, "--set", "rewards=[reward_model:runs/nope/final]"],
        ["model folder not found", "runs/nope/final"],
        "reward-model-path-missing",
    ),
    case(
        [*RLOO, "--set", "rewards=[reward_model:{tiny}]"],
        ["{tiny}", "not a reward model", "LlamaForCausalLM", "--method reward"],
        "rloo-reward-model-is-a-causal-lm",
    ),
    case(
        [*RLOO, "--set", "rewards=[reward_model:{tiny}]"],
        ["{tiny}", "not a reward model", "LlamaForCausalLM"],
        "rloo-reward-model-is-a-causal-lm-existing-run",
        existing=True,
    ),
    case(
        [*EVAL, "--judge", "reward_model:{tiny}"],
        ["{tiny}", "not a reward model", "LlamaForCausalLM"],
        "eval-judge-is-a-causal-lm",
    ),
    case(
        [*EVAL, "--judge", f"api:{CLOSED_URL}", *API, "--set", "api.key_env=null"],
        ["no answer", "127.0.0.1:{port}"],
        "eval-judge-url-does-not-answer",
    ),
    case(
        [*EVAL, "--judge", f"api:{CLOSED_URL}", *API, "--set", "api.key_env=null"],
        ["no answer", "127.0.0.1:{port}"],
        "eval-judge-url-does-not-answer-existing-results",
        existing=True,
    ),
    case(
        [*GRPO, "--set", f"rewards=[api:{CLOSED_URL}]", *API, "--set", "api.key_env=null"],
        ["no answer", "127.0.0.1:{port}"],
        "grpo-reward-url-does-not-answer",
    ),
    case(
        [*EVAL, "--judge", f"api:{CLOSED_URL}", *API, "--set", f"api.key_env={MISSING_KEY}"],
        ["API key", MISSING_KEY],
        "eval-api-key-missing",
    ),
    case(
        [*GRPO, "--set", f"rewards=[api:{CLOSED_URL}]", *API, "--set", f"api.key_env={MISSING_KEY}"],
        ["API key", MISSING_KEY],
        "grpo-api-key-missing",
    ),
    # secrets (issue 30): a URL's credentials and a key given where a variable's name belongs are never echoed
    case(
        [*EVAL, "--judge", "api:http://user:PASSWORD@127.0.0.1:{port}/v1", *API, "--set", "api.key_env=null"],
        ["no answer", "from http://127.0.0.1:{port}/v1"],  # the credentials go as basic auth, never shown
        "eval-judge-url-with-credentials",
    ),
    case(
        [*GRPO, "--set", "rewards=[api:https://user:PASSWORD@127.0.0.1:{port}/v1]", *API],
        ["no answer", "from https://127.0.0.1:{port}/v1"],
        "grpo-reward-url-with-credentials",
    ),
    case(
        [*EVAL, "--judge", f"api:{CLOSED_URL}", *API, "--set", "api.key_env=sk-PASSWORDPASSWORDPASSWORD"],
        ["api.key_env", "not the name of an environment variable", "not the key itself"],
        "api-key-given-as-key-env",
    ),
    # models that cannot be trained as asked (issue 30)
    case(
        [*SFT, "--model", "{models}/adapter"],
        ["adapter", "LoRA adapter", "llmrl merge", "lora.enabled=true"],
        "model-is-a-lora-adapter",
    ),
    case(
        [*SFT, "--model", "{models}/reward-model"],
        ["reward-model", "sequence-classification", "LlamaForSequenceClassification", "policy"],
        "policy-is-a-reward-model",
    ),
    case(
        [*SFT, "--model", "{models}/big-tokenizer"],
        ["big-tokenizer", "tokenizer", "tokens", "embeddings"],
        "tokenizer-larger-than-the-embeddings",
    ),
    case(
        [*SFT, "--model", "{models}/truncated"],
        ["truncated", "damaged or incomplete"],
        "weights-file-truncated",
    ),
    # files and values (issue 30)
    case([*TRAIN, "--dataset", "{tmp}/header_only.csv"], ["header_only.csv", "header", "no rows"], "csv-header-only"),
    case([*TRAIN, "--dataset", "{tmp}/utf16.jsonl"], ["utf16.jsonl", "UTF-16", "iconv -f utf-16"], "dataset-utf16"),
    case(
        [*TRAIN, "--method", "dpo", "--dataset", "{tmp}/no_prompt.jsonl"],
        ["no rows left", "no prompt", "columns chosen, rejected", "data.columns.prompt"],
        "pairs-without-a-prompt",
    ),
    case([*SFT, "--set", "report_to={{a: b}}"], ["report_to", "expected a list"], "dict-for-a-list"),
    case(
        [*TRAIN, "--method", "dpo", "--dataset", "{tmp}/unpaired.jsonl"],
        ["no preference schema", "label", "unpaired data", "kto"],
        "unpaired-data-for-dpo",
    ),
    case(
        [*TRAIN, "--dataset", "{tmp}/narrator.jsonl"],
        ["row 1", "role 'narrator'", "user, assistant, system"],
        "unknown-role",
    ),
    # options that need a CUDA GPU
    case([*SFT, "--set", "precision=fp16"], ["precision=fp16", "CUDA"], "fp16-on-cpu", cpu_only=True),
    case(
        [*SFT, "--set", "fp16=true"],
        ["unknown config key 'fp16'", "precision"],
        "trl-fp16-key",
    ),
    case(
        [*SFT, "--set", "lora.enabled=true", "--set", "lora.quantize=4bit"],
        ["lora.quantize=4bit", "CUDA"],
        "qlora-on-cpu",
        cpu_only=True,
    ),
    case(
        [*GRPO, "--set", "rewards=[accuracy]", "--set", "rl.use_vllm=true"],
        ["rl.use_vllm", "CUDA"],
        "vllm-on-cpu",
        cpu_only=True,
    ),
]


@pytest.fixture
def bad_inputs(tmp_path, monkeypatch) -> dict[str, str]:
    """The input files the cases name, and the values of the templates' placeholders."""
    monkeypatch.delenv(MISSING_KEY, raising=False)
    (tmp_path / "bad.yaml").write_text("model: builtin:tiny\ndataset: builtin:sft\n  max_steps: 3\n")
    (tmp_path / "typo.yaml").write_text("lora:\n  alpah: 8\n")
    good = {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]}
    (tmp_path / "bad.jsonl").write_text(json.dumps(good) + '\n{"messages": [}\n')
    (tmp_path / "blank.jsonl").write_text("")
    (tmp_path / "odd_columns.jsonl").write_text(json.dumps({"colour": "red", "shape": "round"}) + "\n")
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "notes.txt").write_text("not a model\n")
    (tmp_path / "twice.yaml").write_text("max_steps: 1\nlearning_rate: 1.0e-4\nmax_steps: 2\n")
    (tmp_path / "twice_nested.yaml").write_text("lora:\n  r: 4\n  r: 8\n")
    (tmp_path / "latin1.yaml").write_bytes("run_name: café\n".encode("latin1"))
    stage = "  sft:\n    dataset: builtin:sft\n    max_steps: 1\n"
    (tmp_path / "twice_pipeline.yaml").write_text(f"defaults:\n  model: builtin:tiny\nstages:\n{stage}{stage}")
    (tmp_path / "method_pipeline.yaml").write_text(
        f"defaults:\n  model: builtin:tiny\nstages:\n{stage}    method: dpo\n"
    )
    (tmp_path / "output_pipeline.yaml").write_text(
        f"defaults:\n  model: builtin:tiny\n  output_dir: x\nstages:\n{stage}"
    )
    (tmp_path / "nomodel_pipeline.yaml").write_text(f"stages:\n{stage}")
    (tmp_path / "badmodel_pipeline.yaml").write_text(f"defaults:\n  model: ./no/such/model\nstages:\n{stage}")
    (tmp_path / "latin1.jsonl").write_bytes((json.dumps(good) + '\n{"text": "café"}\n').encode("latin1"))
    (tmp_path / "latin1.csv").write_bytes("prompt,completion\nhi,café\n".encode("latin1"))
    (tmp_path / "quote.csv").write_text('prompt,completion\n"what is 1+1?,2\nhi,there\n')
    (tmp_path / "fields.csv").write_text("prompt,completion\nhi,there\n1,+1,2\n")
    image = {"type": "image_url", "image_url": {"url": "cat.png"}}
    image_row = {"messages": [{"role": "user", "content": [image]}, {"role": "assistant", "content": "a cat"}]}
    (tmp_path / "image.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(image_row) + "\n")
    (tmp_path / "null_row.jsonl").write_text(json.dumps(good) + '\n{"messages": null}\n')
    (tmp_path / "mixed.jsonl").write_text(json.dumps(good) + '\n{"prompt": "1+1?", "completion": "2"}\n')
    tiny = ensure_builtin("tiny")
    for folder, files in (("config-only", ["config.json"]), ("no-tokenizer", ["config.json", "model.safetensors"])):
        (tmp_path / folder).mkdir()
        for name in files:
            shutil.copy(tiny / name, tmp_path / folder / name)
    (tmp_path / "header_only.csv").write_text("prompt,completion\n")
    (tmp_path / "utf16.jsonl").write_bytes((json.dumps(good) + "\n").encode("utf-16"))
    (tmp_path / "no_prompt.jsonl").write_text(json.dumps({"chosen": "4", "rejected": "5"}) + "\n")
    unpaired = {"prompt": "1+1?", "completion": "2", "label": True}
    (tmp_path / "unpaired.jsonl").write_text(json.dumps(unpaired) + "\n")
    narrator = {"messages": [{"role": "narrator", "content": "Once"}, {"role": "assistant", "content": "2"}]}
    (tmp_path / "narrator.jsonl").write_text(json.dumps(narrator) + "\n")
    with socket.socket() as s:  # a port nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"tmp": str(tmp_path), "out": str(tmp_path / "out"), "port": str(port)}


@pytest.fixture(scope="session")
def unusable_models(tmp_path_factory) -> Path:
    """Model folders that cannot be trained as a policy: a LoRA adapter, a reward model, a tokenizer larger
    than its model's embeddings, a weights file cut short."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    root = tmp_path_factory.mktemp("unusable-models")
    tiny = ensure_builtin("tiny")
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    adapter = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny), LoraConfig(r=2, target_modules=["q_proj"]))
    adapter.save_pretrained(root / "adapter")
    tokenizer.save_pretrained(root / "adapter")
    AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=1).save_pretrained(root / "reward-model")
    tokenizer.save_pretrained(root / "reward-model")
    shutil.copytree(tiny, root / "big-tokenizer")
    bigger = AutoTokenizer.from_pretrained(tiny)
    bigger.add_tokens([f"<new_{i}>" for i in range(64)])
    bigger.save_pretrained(root / "big-tokenizer")
    shutil.copytree(tiny, root / "truncated")
    weights = root / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return root


def fill(templates: list, values: dict[str, str]) -> list:
    """The templates with their placeholders filled in; a tuple (words of which any one will do) stays one."""
    return [
        tuple(t.format(**values) for t in template) if isinstance(template, tuple) else template.format(**values)
        for template in templates
    ]


def write_existing_run(out: Path, eval_command: bool) -> None:
    """A finished run (or eval results) that a failing --overwrite run must leave exactly as it was."""
    out.mkdir()
    if eval_command:
        (out / "results.json").write_text('{"win_rate": {"mean": 0.5}}\n')
        (out / "samples.jsonl").write_text('{"prompt": "earlier"}\n')
        return
    (out / "final").mkdir()
    (out / "final" / "model.safetensors").write_bytes(b"earlier weights")
    (out / "run_info.json").write_text('{"status": "completed"}\n')
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    (out / "notes.txt").write_text("the user's own file\n")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) and its bytes; folders as empty entries."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"" for p in sorted(folder.rglob("*"))}


def assert_one_clear_line(result, words: list) -> str:
    """The command failed through llmrl's error path with exactly one ``error:`` line naming ``words``."""
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{result.output}"
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0], f"more was printed after the error line:\n{result.stderr}"
    for word in words:
        choices = word if isinstance(word, tuple) else (word,)
        assert any(choice in errors[0] for choice in choices), f"{word!r} not in {errors[0]!r}"
    return errors[0]


@pytest.mark.parametrize("args, words, existing, cpu_only", CASES)
def test_bad_input_is_one_clear_line_and_nothing_written(
    args, words, existing, cpu_only, bad_inputs, tiny_model_path, unusable_models
):
    if cpu_only:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA GPU honours this option")
    values = {**bad_inputs, "tiny": str(tiny_model_path), "models": str(unusable_models)}
    out = Path(values["out"])
    argv = fill(args, values)
    if existing:
        write_existing_run(out, eval_command=argv[0] == "eval")
        argv.append("--overwrite")
    before = snapshot(out) if existing else None

    result = runner.invoke(app, argv)

    assert_one_clear_line(result, fill(words, values))
    assert "PASSWORD" not in result.output  # no credential is ever echoed
    if existing:
        assert snapshot(out) == before, "the earlier run in the output folder was changed"
    else:
        assert not out.exists(), f"left behind: {sorted(snapshot(out))}"


def test_out_of_memory_suggests_what_to_change(bad_inputs, monkeypatch):
    """Out-of-memory during a step (simulated: a GPU is not needed to raise torch's error) names the remedies."""
    import torch
    import transformers

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(transformers.Trainer, "training_step", out_of_memory)
    out = Path(bad_inputs["out"])

    result = runner.invoke(app, fill(SFT, bad_inputs))

    line = assert_one_clear_line(result, ["out of memory"])
    for remedy in ("per_device_train_batch_size", "gradient_checkpointing", "lora"):
        assert remedy in line, f"{remedy!r} not suggested in {line!r}"
    assert not out.exists(), f"left behind: {sorted(snapshot(out))}"


def test_debug_shows_the_traceback(bad_inputs):
    """With --debug the error escapes with its traceback instead of the one line; still nothing is left behind."""
    out = Path(bad_inputs["out"])

    result = runner.invoke(app, ["--debug", *fill([*TRAIN, "--dataset", "{tmp}/bad.jsonl"], bad_inputs)])

    assert result.exit_code != 0
    assert isinstance(result.exception, LlmrlError), result.output
    assert "line 2 is not valid JSON" in str(result.exception)
    shown = "".join(traceback.format_exception(*result.exc_info))
    assert shown.startswith("Traceback") and "llmrl/data/sources.py" in shown
    assert "error:" not in result.stderr
    assert not out.exists(), f"left behind: {sorted(snapshot(out))}"


def test_a_read_only_output_folder_names_the_folder_and_what_to_do(tmp_path, chat_jsonl):
    """A folder the user may not write into (root may write everywhere: for root the folder is made immutable)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.getuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(locked)]).returncode != 0:
            pytest.skip("root writes everywhere, and this file system cannot make a folder immutable")
    else:
        locked.chmod(0o555)
    try:
        result = runner.invoke(app, fill([*SFT, "--dataset", str(chat_jsonl)], {"out": str(locked / "run")}))
    finally:
        if os.getuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        locked.chmod(0o755)

    line = assert_one_clear_line(result, [f"cannot write the output folder {locked / 'run'}", f"on {locked}"])
    assert line.endswith(f"make it writable (chmod u+w {locked}) or choose another folder")
    assert result.exit_code == 2 and not (locked / "run").exists()


def test_a_broken_env_file_warns_naming_the_line_and_the_command_runs(tmp_path):
    """.env is read by the llmrl command (a real process): bad lines and a file that is not UTF-8 are warnings."""
    command = [sys.executable, "-m", "llmrl", "train", "--model", "builtin:tiny", "--print-config"]

    def run():
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)

    (tmp_path / ".env").write_text('LLMRL_TEST_GOOD=1\nnot a line\nMY KEY=2\nQUOTED="unclosed\n')
    result = run()
    assert result.returncode == 0, result.stderr
    assert ".env line 2 is not KEY=VALUE" in result.stderr and ".env line 3 is not KEY=VALUE" in result.stderr
    assert ".env line 4: the value of QUOTED has no closing quote" in result.stderr
    assert "unclosed" not in result.stderr  # values are never echoed

    (tmp_path / ".env").write_bytes("KEY=café\n".encode("latin1"))
    result = run()
    assert result.returncode == 0 and "method: sft" in result.stdout, result.stderr
    warning = "warning: the environment file .env is not UTF-8 text: line 1, column 8 has byte 0xe9"
    assert warning in result.stderr and "its variables were not loaded" in result.stderr
    assert "Traceback" not in result.stderr


def test_messages_are_never_cut_mid_sentence():
    error = OSError(
        "Couldn't instantiate the backend tokenizer from one of: \n(1) a file,\n(2) a slow tokenizer.\n\nMore"
    )
    assert (
        first_line(error) == "Couldn't instantiate the backend tokenizer from one of: (1) a file, (2) a slow tokenizer."
    )
    long = ValueError("word " * 200)
    assert first_line(long).endswith("word ...") and len(first_line(long)) <= 304


@pytest.mark.parametrize("tracker", ["trackio", "neptune"])
@pytest.mark.parametrize("method", ["sft", "ppo"])
def test_a_tracker_that_is_not_installed_is_refused_for_every_method(bad_inputs, tracker, method):
    import importlib.util

    if importlib.util.find_spec(tracker) is None:  # PPO's own loop logs to it through accelerate's trackers
        words = [f"report_to names {tracker}, which is not installed: pip install {tracker}"]
    else:
        pytest.skip(f"{tracker} is installed here")
    data = "builtin:sft" if method == "sft" else "builtin:prompts"
    args = [*fill(TRAIN, bad_inputs), "--method", method, "--dataset", data, "--set", f"report_to=[{tracker}]"]
    assert_one_clear_line(runner.invoke(app, [*args, "--set", "rewards=[length]"] if method == "ppo" else args), words)
    assert not Path(bad_inputs["out"]).exists()


# ---------------------------------------------------------------------------------------------------------
# Runs that vanish or mislead, console noise, files read as they are (issue 30)


def test_a_run_with_a_damaged_run_info_is_listed_as_unreadable(tmp_path):
    (tmp_path / "runs" / "broken").mkdir(parents=True)
    (tmp_path / "runs" / "broken" / "run_info.json").write_text('{"status": "comple')  # a disk that filled up
    result = runner.invoke(app, ["runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "broken" in result.output and "unreadable run_info.json" in result.output


def test_resume_at_max_steps_trains_and_writes_nothing_more_and_a_refusal_says_unset(tmp_path, chat_jsonl):
    """A run resumed to the max_steps it reached has nothing to train (transformers would take one more step
    and write checkpoint-3); a refused change shows an unset key as unset, not as None."""
    out = tmp_path / "run"
    args = ["train", "--model", "builtin:tiny", "--dataset", str(chat_jsonl), "--output-dir", str(out)]
    assert runner.invoke(app, [*args, "--max-steps", "2", "--set", "save_steps=1"]).exit_code == 0
    again = runner.invoke(app, [*args, "--max-steps", "2", "--set", "save_steps=1", "--resume"])
    assert again.exit_code == 0 and "at max_steps 2 already: nothing to train" in again.output, again.output
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    changed = runner.invoke(app, [*args, "--max-steps", "3", "--set", "learning_rate=1e-3", "--resume"])
    assert_one_clear_line(changed, ["learning_rate unset (the default) -> 0.001"])
    shutil.rmtree(out / "final")  # killed while writing final/: resuming writes it from the last checkpoint
    finished = runner.invoke(app, [*args, "--max-steps", "2", "--set", "save_steps=1", "--resume"])
    assert finished.exit_code == 0, finished.output
    assert (out / "final").is_dir() and not (out / "checkpoint-3").exists()


def test_no_third_party_noise_on_the_console(tmp_path, monkeypatch, chat_jsonl):
    """data inspect shows no datasets progress bars; a run with WANDB_MODE=offline (from .env) but without W&B
    prints no "Running in WANDB offline mode" (transformers prints it when imported)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    command = [sys.executable, "-m", "llmrl", "data", "inspect", "--dataset", str(chat_jsonl)]
    inspect = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert inspect.returncode == 0, inspect.stderr
    assert "examples/s" not in inspect.stderr + inspect.stdout and "Generating" not in inspect.stderr
    train = [sys.executable, "-m", "llmrl", "train", "--model", "builtin:tiny", "--dataset", str(chat_jsonl)]
    run = subprocess.run([*train, "--max-steps", "1"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "WANDB" not in run.stdout + run.stderr
