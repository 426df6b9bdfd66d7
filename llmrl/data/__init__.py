"""Load a training split by name: bundled samples, local files and folders, or Hugging Face Hub datasets.

- ``builtin:sft``, ``builtin:preference``, ``builtin:prompts``: the synthetic arithmetic samples shipped in
  ``llmrl/data/samples/`` (splits ``train`` and ``test``; see ``scripts/make_sample_data.py``).
- A local ``.json`` / ``.jsonl`` / ``.parquet`` / ``.csv`` file (its one split is ``train``), or a folder of
  them where each file is named after its split (``train.jsonl``, ``test-00000.parquet``, ...).
- Anything else is a hub dataset name, read with ``datasets.load_dataset`` (``data.subset``, ``data.data_dir``).
"""

from pathlib import Path

from llmrl.config import TrainingConfig
from llmrl.errors import LlmrlError

SAMPLES_DIR = Path(__file__).parent / "samples"
BUILTIN_PREFIX = "builtin:"
BUILTIN_DATASETS = tuple(BUILTIN_PREFIX + p.name for p in sorted(SAMPLES_DIR.iterdir()) if p.is_dir())
LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def load_split(cfg: TrainingConfig, split: str):
    """The named split of ``cfg.dataset`` as a ``datasets.Dataset``, cut to ``data.max_samples`` rows."""
    source = cfg.dataset
    local = local_path(source)
    dataset = _load_local(local, split) if local else _load_hub(source, split, cfg)
    if len(dataset) == 0:
        raise LlmrlError(f"dataset '{source}' split '{split}' has no rows")
    if cfg.data.max_samples is not None:
        dataset = dataset.select(range(min(cfg.data.max_samples, len(dataset))))
    return dataset


def local_path(source: str | None) -> Path | None:
    """The local file or folder a dataset name points to, None for a hub name; raises if it is missing."""
    if not source:
        raise LlmrlError("no dataset given: pass --dataset NAME_OR_PATH (for example --dataset builtin:sft)")
    if source.startswith(BUILTIN_PREFIX):
        if source not in BUILTIN_DATASETS:
            raise LlmrlError(f"unknown built-in dataset '{source}'; built-in datasets: {', '.join(BUILTIN_DATASETS)}")
        return SAMPLES_DIR / source.removeprefix(BUILTIN_PREFIX)
    path = Path(source).expanduser()
    if path.exists():
        return path
    if source.startswith((".", "/", "~")) or path.suffix in LOCAL_FORMATS:
        raise LlmrlError(f"dataset file or folder not found: {source}")
    return None


def _load_local(path: Path, split: str):
    if path.is_file():
        if path.suffix not in LOCAL_FORMATS:
            raise LlmrlError(f"unsupported dataset file {path}: expected one of {', '.join(LOCAL_FORMATS)}")
        if split != "train":
            raise LlmrlError(f"a single dataset file has only the 'train' split, not '{split}': {path}")
        return _read_files(LOCAL_FORMATS[path.suffix], [path], path)
    files_by_split: dict[str, list[Path]] = {}
    for file in sorted(p for p in path.rglob("*") if p.suffix in LOCAL_FORMATS):
        split_name = file.stem.split("-")[0].split(".")[0]
        files_by_split.setdefault(split_name, []).append(file)
    if not files_by_split:
        raise LlmrlError(f"dataset folder {path} holds no {', '.join(LOCAL_FORMATS)} files")
    files = files_by_split.get(split)
    if files is None:
        raise LlmrlError(f"split '{split}' not found in {path}; splits there: {', '.join(sorted(files_by_split))}")
    formats = {LOCAL_FORMATS[f.suffix] for f in files}
    if len(formats) > 1:
        raise LlmrlError(f"split '{split}' in {path} mixes file formats ({', '.join(sorted(formats))}); use one")
    return _read_files(formats.pop(), files, path)


def _read_files(builder: str, files: list[Path], source: Path):
    import datasets

    try:
        return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    except Exception as e:  # datasets wraps parse errors in several exception types
        cause = e.__cause__ or e
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise LlmrlError(f"could not read dataset {source}: {detail}") from e


def _load_hub(name: str, split: str, cfg: TrainingConfig):
    import datasets

    try:
        return datasets.load_dataset(name, cfg.data.subset, data_dir=cfg.data.data_dir, split=split)
    except Exception as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LlmrlError(
            f"could not load dataset '{name}' (split '{split}') from the Hugging Face Hub: {detail}"
        ) from e
