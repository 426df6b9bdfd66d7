"""Small helpers shared by test modules."""


def tiny_train_args(dataset, output_dir, *extra) -> list[str]:
    """`llmrl train` arguments for the built-in tiny model: dataset, output folder, then any extra arguments."""
    return ["train", "--model", "builtin:tiny", "--dataset", str(dataset), "--output-dir", str(output_dir), *extra]
