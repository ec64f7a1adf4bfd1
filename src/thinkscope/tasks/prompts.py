"""Prompt styles (``cot``, ``direct``, ``r1``, ``fewshot``) through a chat or a plain template."""

from __future__ import annotations

from dataclasses import dataclass

from thinkscope.core.errors import UserError
from thinkscope.tasks.problem import Problem

STYLES = ("cot", "direct", "r1", "fewshot")
TEMPLATES = ("auto", "chat", "plain")

_INSTRUCTIONS = {
    "cot": "Think step by step, then finish with 'The answer is N.'",
    "direct": "Reply with only the final answer, as 'The answer is N.'",
    "fewshot": "",
}
R1_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., "
    "<think> reasoning process here </think> <answer> answer here </answer>."
)
PLAIN_STOP = ("\nQuestion:", "\n\nQuestion", "\nUser:")
R1_STOP = ("</answer>",)  # the R1 response ends "... </think> <answer>X</answer>"


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt and the stop strings that go with its template."""

    text: str
    stop: tuple[str, ...]
    chat: bool


def worked_answer(example: Problem) -> str:
    """How a few-shot example is answered: its solution if any, then the answer sentence."""
    steps = example.solution.strip()
    if not steps and "expression" in example.meta:
        steps = f"{example.meta['expression']} = {example.answer}."
    return f"{steps} The answer is {example.answer}.".strip()


def _user_turn(question: str, style: str) -> str:
    instruction = _INSTRUCTIONS.get(style, "")
    return f"{question}\n{instruction}".strip()


def render_prompt(
    tokenizer,
    problem: Problem,
    style: str = "cot",
    template: str = "auto",
    fewshot: list[Problem] = (),
) -> Prompt:
    """Render ``problem`` in ``style``; ``template`` is ``chat``, ``plain``, or ``auto`` (chat if
    the tokenizer has a chat template)."""
    if style not in STYLES:
        raise UserError(f"unknown prompt style {style!r}; choose one of {', '.join(STYLES)}")
    if template not in TEMPLATES:
        raise UserError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if template == "chat" and not has_chat:
        raise UserError("this model's tokenizer has no chat template; use --template plain")
    chat = has_chat if template == "auto" else template == "chat"
    turns = [(_user_turn(ex.question, style), worked_answer(ex)) for ex in fewshot]
    question = _user_turn(problem.question, style)
    if chat:
        messages = [{"role": "system", "content": R1_SYSTEM}] if style == "r1" else []
        for user, assistant in turns:
            messages += [
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ]
        messages.append({"role": "user", "content": question})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if style == "r1":
            text += "<think>"
        return Prompt(text, R1_STOP if style == "r1" else (), chat=True)
    shots = "".join(f"Question: {user}\nAnswer: {assistant}\n\n" for user, assistant in turns)
    if style == "r1":
        text = f"{R1_SYSTEM}\nUser: {question}\nAssistant: <think>"
        return Prompt(text, (*PLAIN_STOP, *R1_STOP), chat=False)
    return Prompt(f"{shots}Question: {question}\nAnswer:", PLAIN_STOP, chat=False)
