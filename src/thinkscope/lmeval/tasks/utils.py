"""Datasets of the bundled lm-eval tasks, read from thinkscope's own task data (offline)."""

import datasets

from thinkscope.tasks.loaders import fewshot_examples, load_problems


def gsm8k(**kwargs) -> datasets.DatasetDict:
    """GSM8K test (1,319 rows: id, question, answer) and the 5-shot CoT examples (question,
    target = worked solution + "The answer is N.") thinkscope uses for its own few-shot prompts."""
    test = [
        {"id": p.id, "question": p.question, "answer": p.answer} for p in load_problems("gsm8k")
    ]
    shots = [
        {"question": p.question, "target": f"{p.solution.rstrip('.')}. The answer is {p.answer}."}
        for p in fewshot_examples("gsm8k", 5)
    ]
    return datasets.DatasetDict(
        test=datasets.Dataset.from_list(test), fewshot=datasets.Dataset.from_list(shots)
    )
