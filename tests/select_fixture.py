"""A three-question arithmetic task and a small selection config, for the Think@n tests."""

from pathlib import Path

from thinkscope.select.experiment import SelectConfig


def arithmetic_task(folder: Path) -> Path:
    """``folder/task.jsonl``: three one-digit additions."""
    path = folder / "task.jsonl"
    path.write_text(
        "".join(
            f'{{"question": "What is {a} + {b}?", "answer": "{a + b}"}}\n'
            for a, b in [(3, 5), (2, 2), (7, 1)]
        )
    )
    return path


def small_config(task: Path, **changes) -> SelectConfig:
    """3 questions x 4 samples, 3-token prefixes, 8 new tokens, two repeats (``changes``
    override any field)."""
    options = dict(
        task=f"jsonl:{task}",
        questions=3,
        n=4,
        prefix_tokens=3,
        keep_ratio=0.5,
        repeats=2,
        max_new_tokens=8,
        prompt_style="cot",
        batch_size=8,
        window=3,
        g=0.0013,
        rho=0.75,
        temperature=1.0,
    )
    return SelectConfig.parse(**(options | changes))
