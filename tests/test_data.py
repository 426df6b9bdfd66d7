"""Loading splits from bundled samples, local files and folders, with clear errors for bad input."""

import json

import pytest

from llmrl.config import load_config
from llmrl.data import BUILTIN_DATASETS, load_split
from llmrl.errors import LlmrlError

ROWS = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(5)]


def cfg_for(source, *sets):
    return load_config(sets=[f"dataset={source}", *sets])


def test_builtin_samples_have_train_and_test_splits():
    assert BUILTIN_DATASETS == ("builtin:preference", "builtin:prompts", "builtin:sft")
    for name in BUILTIN_DATASETS:
        train, test = load_split(cfg_for(name), "train"), load_split(cfg_for(name), "test")
        assert len(train) >= 300 and len(test) == 100
    sft = load_split(cfg_for("builtin:sft"), "train")
    assert sft[0]["messages"][-1]["role"] == "assistant" and "####" in sft[0]["messages"][-1]["content"]
    prompts = load_split(cfg_for("builtin:prompts"), "test")
    assert set(prompts.column_names) == {"prompt", "answer"}


def test_sample_splits_do_not_overlap():
    for name in BUILTIN_DATASETS:
        key = "messages" if name == "builtin:sft" else "prompt"
        questions = [
            {json.dumps(row[key][-2 if name == "builtin:sft" else -1]) for row in load_split(cfg_for(name), split)}
            for split in ("train", "test")
        ]
        assert not questions[0] & questions[1], name


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_local_file_formats(tmp_path, suffix):
    import pandas as pd

    path = tmp_path / f"data{suffix}"
    frame = pd.DataFrame(ROWS)
    {
        ".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
        ".json": lambda: path.write_text(json.dumps(ROWS)),
        ".csv": lambda: frame.to_csv(path, index=False),
        ".parquet": lambda: frame.to_parquet(path),
    }[suffix]()
    dataset = load_split(cfg_for(path), "train")
    assert dataset.to_list() == ROWS


def test_folder_of_split_files(tmp_path):
    for split, rows in (("train", ROWS), ("test", ROWS[:2])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(load_split(cfg_for(tmp_path), "train")) == 5
    assert load_split(cfg_for(tmp_path), "test").to_list() == ROWS[:2]
    with pytest.raises(LlmrlError, match="split 'validation' not found in .*; splits there: test, train"):
        load_split(cfg_for(tmp_path), "validation")


def test_max_samples(tmp_path):
    assert len(load_split(cfg_for("builtin:sft", "data.max_samples=7"), "train")) == 7


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "could not read dataset|has no rows"),
        ('{"prompt": "a", "completion": \n', "could not read dataset"),
    ],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(LlmrlError, match=message):
        load_split(cfg_for(path), "train")


def test_single_file_has_only_train(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n")
    with pytest.raises(LlmrlError, match="a single dataset file has only the 'train' split, not 'test'"):
        load_split(cfg_for(path), "test")


def test_unknown_builtin_and_missing_path():
    with pytest.raises(LlmrlError, match="unknown built-in dataset 'builtin:nope'; built-in datasets: builtin:pref"):
        load_split(cfg_for("builtin:nope"), "train")
    with pytest.raises(LlmrlError, match="dataset file or folder not found: ./missing"):
        load_split(cfg_for("./missing"), "train")
