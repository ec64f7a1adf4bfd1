"""Find the final answer in a model completion and grade it against a gold answer.

Markers, strongest first (method names in brackets)::

    <answer>18</answer>                                  [answer-tag]
    #### 18                                              [hash]
    \\boxed{18}, nested braces allowed                    [boxed]
    "the final answer is 18", "**Final Answer:** $18.00"  [final-answer]
    "The answer is 18.", "the answer to this question is 18"  [the-answer-is]
    "A: 18" at the start of a line, "Answer: 18", "**Answer:** 18"  [a-colon]
    the last number in the text, only when no marker states an answer  [last-number]

Rule for several markers: the completion is first cut where the model starts inventing a
new exchange (a line opening "Question:", "Q:", "User:", ...) if an answer marker comes
before that line, because small models answer and then write themselves a new problem
("The answer is 8.\\n\\nQuestion: ... The answer is 13."). In what is left the strongest kind
present wins and, within it, its LAST occurrence, so a model that corrects itself ("The
answer is 8. Wait ... the answer is 9.") gets 9. Numbers after a marker never count.

After ``####`` and the prose markers the answer is the rest of the sentence: the right-hand
side of an ``expression = value`` chain, else the whole span if it is LaTeX or a ``[list]``,
else its first number, else its words. Skipped as stating no answer: a marker in quotes
('"The answer is N" is a cliche'), a literal ``N`` copied from an "end with 'The answer is
N.'" instruction, more than six words with no number (the start of a sentence), and an
"A:" or "Answer:" line that does not open with its number.

Comparison (:func:`answers_match`): exact rational comparison after :func:`normalize_number`,
then case/space-insensitive string equality, then math-verify for LaTeX or symbolic
answers. math-verify runs with its signal-based timeouts off (``parsing_timeout=None``,
``timeout_seconds=None``), so grading is safe in threads and worker processes; answers that
could make sympy run away (power towers, huge exponents, long strings) are not sent to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from math_verify import parse, verify

from thinkscope.tasks.strategyqa import extract_yes_no, yes_no

__all__ = ["Grade", "answers_match", "extract_answer", "grade", "normalize_number"]


@dataclass(frozen=True)
class Grade:
    """The extracted answer (normalised, None if nothing found), whether it is right, and how."""

    pred: str | None
    correct: bool
    method: str


_NEW_TURN = re.compile(r"\n[ \t*#]*(?:Question|Q|User|Human|Problem)[ \t]*\d*[ \t*]*:", re.I)
_NUM = r"(?<![\w.:])(?:[-−]\$?|\$[-−]?)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+)?(?!:\d)"
_NUMBER = re.compile(_NUM)  # a number, not part of a word or a clock time ("5:00 PM")
_NOT_QUOTED = r"(?<![\"'“‘]the )(?<![\"'“‘])"
_IS = r"(?:[ \t]+[^\s.:]+){0,4}?[ \t]+(?:is|would be|will be)\b"  # "answer to this question is"
_IS_ANSWER = r"|(" + _NUM + r")[ \t]+is[ \t]+(?:the|my)[ \t]+(?:final[ \t]+|correct[ \t]+)?answer\b"
_SPAN = r"(?=[ \t]*(?:\*\*)?[ \t]*:?[ \t]*(?:\*\*)?[ \t]*(.{0,300}))"  # look ahead: spans overlap
_MARKERS: list[tuple[str, re.Pattern[str]]] = [
    ("answer-tag", re.compile(r"<answer>(.*?)(?:</answer>|$)", re.I | re.S)),
    ("hash", re.compile(r"####(?=[ \t]*(.{0,300}))")),
    ("boxed", re.compile(r"\\(?:boxed|fbox)\s*\{")),
    (
        "final-answer",
        re.compile(_NOT_QUOTED + r"\bfinal\s+answer\b\**(?:" + _IS + r"|[ \t]*:)" + _SPAN, re.I),
    ),
    ("the-answer-is", re.compile(_NOT_QUOTED + r"\banswer\b\**" + _IS + _SPAN + _IS_ANSWER, re.I)),
    ("a-colon", re.compile(r"(?:^[ \t>#*-]*A|\banswer)[ \t]*\**[ \t]*:" + _SPAN, re.I | re.M)),
]
_ALL = tuple(kind for kind, _ in _MARKERS)
_INLINE = ("hash", "final-answer", "the-answer-is", "a-colon")  # answer ends with the sentence
_INNER = {"answer-tag": _ALL[1:], "boxed": _INLINE}  # markers looked for inside these
_PLAIN_NUMBER = re.compile(
    r"(?P<sign>[-−]?)\s*(?:\\?\$|€|£)?\s*(?P<sign2>[-−]?)\s*"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:\s*/\s*(?P<den>\d+))?"
    r"\s*(?:%|\\%|[a-zA-Z][a-zA-Z .'/-]*)?"
)


def _brace_pairs(text: str) -> dict[int, int]:
    """Map the position of each "{" to that of its matching "}"; unclosed ones are left out."""
    pairs, opened = {}, []
    for m in re.finditer(r"[{}]", text):
        if m[0] == "{":
            opened.append(m.start())
        elif opened:
            pairs[opened.pop()] = m.start()
    return pairs


def _answers(
    kind: str, pattern: re.Pattern[str], text: str, last: bool = False
) -> Iterator[tuple[int, str]]:
    """(position, answer) for each marker of one kind that states an answer, lazily."""
    matches = list(pattern.finditer(text))
    pairs = _brace_pairs(text) if kind == "boxed" else {}
    for m in reversed(matches) if last else matches:
        if kind != "boxed":
            span = m[m.lastindex]
        elif (end := pairs.get(m.end() - 1)) is not None:
            span = text[m.end() : end]
        else:
            continue
        if answer := _pick(kind, span):
            yield m.start(), answer


def _pick(kind: str, span: str) -> str | None:
    """The answer stated by the text after a marker, or None if it states none."""
    span = span.strip()
    if kind in ("answer-tag", "boxed"):  # "<answer>\\boxed{8}</answer>", "\\boxed{x = 8}"
        inner, method = _extract(span, _INNER[kind], fallback=False)
        if method != "none":
            return inner
    else:
        span = re.split(r"\.(?:\s|\*|$)|\n", span, maxsplit=1)[0]
    head, eq, tail = span.rpartition("=")
    if eq and not re.search(r"[a-zA-Z]{2,}", head):  # "3 + 5 = 8", "x = 8"
        span = tail
    span = span.strip(" \t*$:")
    if kind not in _INLINE or re.search(r"\\[a-zA-Z]|[\^{}]", span) or span[:1] == "[":
        return span or None
    if numbers := _NUMBER.findall(span):  # "A: First we add 3 + 4 ..." opens a solution
        return numbers[0] if kind != "a-colon" or span.startswith(numbers[0]) else None
    words = span.rstrip(".!").split()
    return span if 0 < len(words) <= 6 and span != "N" else None


def _extract(
    text: str, kinds: Iterable[str] = _ALL, fallback: bool = True
) -> tuple[str | None, str]:
    """The last answer of the strongest marker kind in ``text``, else its last number."""
    for kind, pattern in _MARKERS:
        if kind in kinds and (hit := next(_answers(kind, pattern, text, last=True), None)):
            return hit[1], kind
    numbers = _NUMBER.findall(text) if fallback else []
    return (numbers[-1], "last-number") if numbers else (None, "none")


def extract_answer(completion: str) -> tuple[str | None, str]:
    """Return ``(raw answer, method)`` for a completion; ``(None, "none")`` if there is none.

    See the module docstring for the markers, their order and the rule for several markers.
    """
    if not isinstance(completion, str) or not completion.strip():
        return None, "none"
    firsts = [hit[0] for k, p in _MARKERS if (hit := next(_answers(k, p, completion), None))]
    if firsts and (cut := _NEW_TURN.search(completion, min(firsts))):
        completion = completion[: cut.start()]
    return _extract(completion)


def normalize_number(text: str) -> str | None:
    """Canonical form of a single number, or None if ``text`` is not one number.

    Accepts thousands commas, a sign, a currency sign, ``%``, trailing unit words and a
    final period: ``"1,000" -> "1000"``, ``"$18.00" -> "18"``, ``"18 dollars" -> "18"``,
    ``"-3" -> "-3"``, ``"2.50" -> "2.5"``. Fractions stay fractions, reduced: ``"2/4" -> "1/2"``,
    ``"4/2" -> "2"`` (:func:`answers_match` still equates ``"1/2"`` and ``"0.5"``).
    """
    if not isinstance(text, str):
        return None
    text = re.sub(r"\\(?:text|mathrm)\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\{,\}", ",", re.sub(r"\\[,!;: ]", "", text))
    if (m := _PLAIN_NUMBER.fullmatch(text.strip().strip("$*").strip().rstrip(".").strip())) is None:
        return None
    den = int(m["den"] or 1)
    if den == 0:
        return None
    value = Fraction(m["num"].replace(",", "").rstrip(".")) / den
    sign = "-" if (m["sign"] + m["sign2"]).replace("−", "-") == "-" and value else ""
    if value.denominator == 1:
        return f"{sign}{value.numerator}"
    if m["den"] is not None:
        return f"{sign}{value.numerator}/{value.denominator}"
    return sign + format(Decimal(value.numerator) / value.denominator, "f")


def _clean(text: str) -> str:
    """Strip what a model wraps around an answer: ``$``, ``**``, quotes, a final period."""
    text = re.sub(r"^\\[(\[]|\\[)\]]$", "", text.strip())
    return re.sub(r"\s+", " ", text.strip(" \t\n*$`'\"").rstrip(".").strip(" *$"))


def _as_string(text: str) -> str:
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", _clean(text)).casefold()
    return re.sub(r"\s*([,;:()\[\]{}])\s*", r"\1", text)


def _mathy(text: str) -> bool:
    """Worth sending to math-verify: short, has a digit or a LaTeX command, no plain words."""
    return (
        len(text) <= 200
        and bool(re.search(r"\d|\\[a-zA-Z]", text))
        and not re.search(r"[a-zA-Z]{2,}", re.sub(r"\\[a-zA-Z]+", "", text))
        and not re.search(r"\^\s*\{?[^}\s]*\^|\^\s*\{?\s*\d{4,}|\*\*", text)
    )


def _math_verify(pred: str, gold: str) -> bool:
    try:
        p, g = (parse(s if "$" in s else f"${s}$", parsing_timeout=None) for s in (pred, gold))
        return bool(p and g and verify(g, p, timeout_seconds=None))
    except Exception:  # sympy can fail in many ways on odd input; that is a mismatch
        return False


def answers_match(pred: str, gold: str) -> bool:
    """True if ``pred`` states the same answer as ``gold`` (numbers, strings or LaTeX)."""
    if not isinstance(pred, str) or not isinstance(gold, str) or not pred.strip():
        return False
    p, g = normalize_number(pred), normalize_number(gold)
    if p is not None and g is not None:
        return Fraction(p) == Fraction(g)
    if _as_string(pred) == _as_string(gold):
        return True
    pred, gold = _clean(pred), _clean(gold)
    return _mathy(pred) and _mathy(gold) and _math_verify(pred, gold)


def _gold_answer(gold: str) -> str:
    """A gold that is a whole solution (``... #### 18``, ``\\boxed{18}``) gives its answer."""
    raw, method = extract_answer(gold)
    return raw if raw is not None and method not in ("last-number", "none") else gold


def grade(completion: str, gold: str) -> Grade:
    """Extract the final answer from ``completion`` and compare it with ``gold``. Never raises."""
    try:
        if (want := yes_no(gold)) is not None:  # a yes/no task (StrategyQA)
            said, method = extract_yes_no(completion)
            return Grade(said, yes_no(said) == want, method)
        raw, method = extract_answer(completion)
        pred = None if raw is None else normalize_number(raw) or _clean(raw) or None
        if pred is None:
            return Grade(None, False, "none")
        return Grade(pred, isinstance(gold, str) and answers_match(raw, _gold_answer(gold)), method)
    except Exception:  # one odd completion must not stop an evaluation run
        return Grade(None, False, "none")
