"""``sib`` (stability of intermediate beliefs): does the middle of the model read a prompt and
its paraphrases alike?

The prompt is decoded (special tokens kept), paraphrased by three seeded rules and encoded
again; for the original and each paraphrase, the middle block's output (``hidden_states[L//2]``)
is mean-pooled over the last ``POOL`` prompt tokens, the final one excluded. ``sib`` is the mean
cosine similarity between the original's pooled state and each paraphrase's. A rule that finds
nothing to change leaves the text as it is (cosine 1). The rules (each seeded by the text):

- synonym swap: one word from :data:`SYNONYMS` (chosen at random among those present);
- clause reorder: the two clauses of one sentence that has a single ", " are swapped;
- connector swap: one connector from :data:`CONNECTORS` is replaced by its partner.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Sequence

import torch

from thinkscope.metrics.rev.probe import middle_block
from thinkscope.models import LM
from thinkscope.models.hooks.points import capture, forward, stop_after

POOL = 24
SYNONYMS = {
    "what": "which",
    "calculate": "compute",
    "compute": "calculate",
    "find": "determine",
    "total": "sum",
    "sum": "total",
    "number": "value",
    "has": "owns",
    "buys": "purchases",
    "gives": "hands",
    "many": "numerous",
    "each": "every",
    "answer": "result",
    "question": "problem",
    "step": "stage",
    "finish": "end",
    "then": "next",
}
CONNECTORS = {
    "and": "and also",
    "then": "after that",
    "so": "therefore",
    "but": "however",
    "because": "since",
    "if": "when",
    "after": "once",
}
_SENTENCE = re.compile(r"[^.?!\n]+[.?!]")


def _rng(text: str, rule: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256((rule + text).encode()).digest()[:8]))


def _swap_word(text: str, table: dict[str, str], rule: str) -> str:
    spans = [m for m in re.finditer(r"\b[A-Za-z]+\b", text) if m.group().lower() in table]
    if not spans:
        return text
    m = _rng(text, rule).choice(spans)
    word = table[m.group().lower()]
    word = word.capitalize() if m.group()[0].isupper() else word
    return text[: m.start()] + word + text[m.end() :]


def synonym_swap(text: str) -> str:
    return _swap_word(text, SYNONYMS, "synonym")


def connector_swap(text: str) -> str:
    return _swap_word(text, CONNECTORS, "connector")


def clause_reorder(text: str) -> str:
    candidates = [m for m in _SENTENCE.finditer(text) if m.group().count(", ") == 1]
    if not candidates:
        return text
    m = _rng(text, "clause").choice(candidates)
    sentence = m.group()
    lead = len(sentence) - len(sentence.lstrip())
    body, end = sentence[lead:-1], sentence[-1]
    first, second = body.split(", ")
    swapped = f"{second[:1].upper()}{second[1:]}, {first[:1].lower()}{first[1:]}{end}"
    return text[: m.start() + lead] + swapped + text[m.end() :]


PARAPHRASES = (synonym_swap, clause_reorder, connector_swap)


def paraphrases(text: str) -> list[str]:
    """The three rule-based paraphrases of ``text`` (deterministic)."""
    return [rule(text) for rule in PARAPHRASES]


@torch.no_grad()
def pooled_middle(lm: LM, ids: Sequence[int]) -> torch.Tensor:
    """``[d]`` float64: the middle block's output mean-pooled over the last ``POOL`` tokens of
    ``ids`` before the final one (all but the final one when shorter). The forward pass stops
    at the middle block (about half the cost of a full pass)."""
    layer = middle_block(lm.n_layers) + 1
    with capture(lm, [layer]) as seen, stop_after(lm, layer):
        forward(lm, input_ids=torch.tensor([list(ids)], device=lm.device), use_cache=False)
    states = seen[layer]
    window = states[0][0, :-1][-POOL:] if len(ids) > 1 else states[0][0]
    return window.double().mean(0).cpu()


def stability(lm: LM, prompt_ids: Sequence[int]) -> float:
    """``sib`` of one prompt (NaN for an empty prompt)."""
    if not len(prompt_ids):
        return math.nan
    text = lm.tokenizer.decode(list(prompt_ids), skip_special_tokens=False)
    base = pooled_middle(lm, prompt_ids)
    sims = []
    for variant in paraphrases(text):
        ids = lm.tokenizer(variant, add_special_tokens=False)["input_ids"]
        other = pooled_middle(lm, ids) if variant != text else base
        sims.append(float(torch.nn.functional.cosine_similarity(base, other, dim=0)))
    return float(sum(sims) / len(sims))
