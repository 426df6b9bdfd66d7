"""Model-family conformance: every method trains two steps on a tiny model of each family users fine-tune
(``families.py``: Qwen2.5 base and instruct, Qwen3, Llama 3, Gemma 2, Mistral, a base model without a chat
template), and llmrl gets right what goes wrong in practice with real tokenizers: the chat-template preflight
finds the family's end-of-turn token, SFT's labels cover the answer and that token and nothing of the prompt,
BOS appears once, system messages reach templates that refuse them, and every generation (eval and the
held-out task metrics, PPO's rollouts, GRPO's and RLOO's groups) stops at the end of the turn.

Each family's model is rigged to answer every prompt with its end-of-turn token at once (``rig_to_end_turns``):
a generation that stops there has one token; one that only stops at the eos token runs to the length limit."""

import json

import pytest
import torch
from families import FACTS, FAMILIES, build_family
from transformers import AutoTokenizer

from llmrl.config import load_config
from llmrl.methods import METHODS
from llmrl.runner import run_training

MAX_NEW = 6  # tokens a completion may take: a generation that does not stop at the end of its turn takes them all
QUESTIONS = [(f"What is {a} plus {b}?", str(a + b)) for a, b in [(1, 2), (3, 4), (2, 2), (5, 1), (6, 3), (4, 4)]]


def end_of_turn(family: str) -> str:
    return FACTS[family].end_of_turn or FACTS[family].eos_token  # llmrl's plain template ends answers with eos


def rig_to_end_turns(folder, family: str) -> None:
    """Make the model answer every prompt with its end-of-turn token first, whatever it reads: hidden dimension
    0 of the residual stream holds a positive constant from every token's embedding (no layer writes it),
    the final norm keeps that dimension alone, and the output layer scores the end-of-turn token 30 times
    higher along it than any other token (Gemma's logit soft-capping leaves a wide gap)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    eot = tokenizer.convert_tokens_to_ids(end_of_turn(family))
    with torch.no_grad():
        model.get_input_embeddings().weight[:, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0] = 0.0
            layer.mlp.down_proj.weight[0] = 0.0
        norm = model.model.norm.weight
        gemma_style = family == "gemma"  # Gemma's RMSNorm scales by (1 + weight)
        norm.fill_(-1.0 if gemma_style else 0.0)
        norm[0] = 0.0 if gemma_style else 1.0
        head = model.get_output_embeddings().weight
        if head.data_ptr() != model.get_input_embeddings().weight.data_ptr():
            head.zero_()
            head[:, 0] = 1.0
        head[eot, 0] = 30.0
    model.save_pretrained(folder)


@pytest.fixture(scope="module")
def family_models(tmp_path_factory):
    """{family: folder of its rigged tiny model}, built once for this module."""
    root = tmp_path_factory.mktemp("families")
    folders = {}
    for family in FAMILIES:
        folders[family] = build_family(family, root / family)
        rig_to_end_turns(folders[family], family)
    return folders


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A small dataset of each kind: chats with a system message, preference pairs, prompts with a held-out
    split (for the online methods' task metrics)."""
    root = tmp_path_factory.mktemp("data")

    def write(name: str, rows: list[dict]) -> str:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return str(path)

    system = {"role": "system", "content": "Answer with a number."}
    chats = [
        {"messages": [system, {"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in QUESTIONS
    ]
    pairs = [{"prompt": q, "chosen": a, "rejected": str(int(a) + 1)} for q, a in QUESTIONS]
    prompts = [{"prompt": q, "solution": a} for q, a in QUESTIONS]
    write("prompts/train.jsonl", prompts)
    write("prompts/test.jsonl", prompts[:2])
    return {
        "sft": write("chats.jsonl", chats),
        "preference": write("pairs.jsonl", pairs),
        "prompt": str(root / "prompts"),
    }


def run(method: str, family: str, family_models, datasets, tmp_path, *extra) -> tuple:
    """Two steps of ``method`` on ``family``'s model: (final folder, metrics records, train.log)."""
    spec = METHODS[method]
    sets = [f"method={method}", f"model={family_models[family]}", f"output_dir={tmp_path / method}"]
    sets += [f"dataset={datasets[{'kto': 'preference'}.get(spec.kind, spec.kind)]}", "max_steps=2", "logging_steps=1"]
    sets += ["per_device_train_batch_size=2", "max_length=96", "save_steps=100"]
    if spec.online:
        sets += ["rewards=[accuracy]", f"rl.max_completion_length={MAX_NEW}", "eval_split=test", "eval_steps=2"]
    if method in ("grpo", "rloo"):
        sets += ["rl.num_generations=2"]
    if method == "distill":
        sets += [f"distill.teacher={family_models[family]}", f"distill.max_completion_length={MAX_NEW}"]
    if family == "qwen3":
        sets += ["chat_template_kwargs={enable_thinking: false}"]
    final = run_training(load_config(sets=[*sets, *extra]))
    metrics = [json.loads(line) for line in (tmp_path / method / "metrics.jsonl").read_text().splitlines()]
    return final, metrics, (tmp_path / method / "train.log").read_text()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_trains_on_the_family_and_stops_at_the_end_of_a_turn(family, family_models, datasets, tmp_path):
    turn = end_of_turn(family)
    for method in METHODS:
        final, metrics, log = run(method, family, family_models, datasets, tmp_path)
        assert f"end of turn {turn}" in log, (method, log)  # the preflight ran and found the family's token
        assert max(record["step"] for record in metrics) == 2, method
        saved = AutoTokenizer.from_pretrained(final)
        assert saved.chat_template, method  # the template (llmrl's plain one for no-template) is saved too
        if method in ("grpo", "rloo"):  # every sampled completion is the end-of-turn token alone
            lengths = [r["completions/mean_length"] for r in metrics if "completions/mean_length" in r]
            assert lengths and set(lengths) == {1.0}, (method, lengths)
        if method == "ppo":
            assert {r["response_length"] for r in metrics if "response_length" in r} == {1.0}
        if method in ("grpo", "rloo", "ppo", "online_dpo"):  # greedy answers to held-out prompts (task metrics)
            evaluated = [r["eval_completion_length"] for r in metrics if "eval_completion_length" in r]
            assert evaluated and set(evaluated) == {1.0}, (method, evaluated)


@pytest.mark.parametrize("family", FAMILIES)
def test_sft_labels_cover_the_answer_and_its_end_of_turn_and_bos_appears_once(
    family, family_models, datasets, tmp_path
):
    """The trained tokens of a chat row are the answer and the template's end-of-turn token (and what the
    template writes after it, ChatML's newline), none of the prompt; the system message reaches a template
    without a system role joined to the user's message; BOS appears once where the family has one."""
    from llmrl.methods import sft

    sets = ["method=sft", f"model={family_models[family]}", f"dataset={datasets['sft']}", f"output_dir={tmp_path}"]
    if family == "qwen3":  # non-thinking data: the empty think block belongs to the prompt
        sets.append("chat_template_kwargs={enable_thinking: false}")
    trainer = sft.build_trainer(load_config(sets=sets))
    tokenizer = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    trained = [token for token, label in zip(ids, labels, strict=True) if label != -100]
    text = tokenizer.decode(trained)
    answer = QUESTIONS[0][1]
    assert text.lstrip().startswith(answer), text  # nothing of the prompt
    assert tokenizer.convert_tokens_to_ids(end_of_turn(family)) in trained, text
    assert text.lstrip()[len(answer) :].strip() == end_of_turn(family), text  # the answer, then the end of turn
    prompt = tokenizer.decode([token for token, label in zip(ids, labels, strict=True) if label == -100])
    assert "Answer with a number." in prompt and QUESTIONS[0][0] in prompt
    bos = FACTS[family].bos_token
    if bos:
        assert ids[0] == tokenizer.convert_tokens_to_ids(bos) and ids.count(ids[0]) == 1
    else:
        assert tokenizer.bos_token_id is None or tokenizer.bos_token_id not in ids


@pytest.mark.parametrize("family", ["qwen2.5-base", "llama3", "gemma"])
def test_eval_answers_stop_at_the_end_of_a_turn(family, family_models, tmp_path):
    """llmrl eval's generation (the same engine as the held-out task metrics) stops every answer at the
    end-of-turn token where it differs from the eos token."""
    from llmrl.evaluation import EvalSettings, generate

    cfg = load_config(sets=[f"model={family_models[family]}", "dataset=builtin:prompts"])
    prompts = [[{"role": "user", "content": q}] for q, _ in QUESTIONS[:3]]
    settings = EvalSettings(judge="accuracy", max_new_tokens=MAX_NEW, batch_size=2)
    answers, token_ids = generate(str(family_models[family]), prompts, settings, cfg)
    eot = AutoTokenizer.from_pretrained(family_models[family]).convert_tokens_to_ids(end_of_turn(family))
    assert token_ids == [[eot]] * 3 and answers == [""] * 3
