"""``thinkscope profile diff A B --out DIR``: what changed between two cards of one protocol.

Two profiles of the same protocol (version, budget, base-run settings, section sizes) answered
the same questions with the same seeds, so their per-question values pair: each stat defined in
both cards gets ``B - A`` with a 95% CI, and each section a verdict from its headline stats.

``DIR/diff.json`` (schema ``thinkscope.profile-diff/1``):

- ``a``, ``b``: ``folder``, ``model`` (the card's resolved model spec: name, loading options,
  ``weights`` identity), ``budget``, ``version`` (protocol) and ``created`` of each card;
- ``protocol``: the protocol both cards share;
- ``sections``: name -> ``title``, ``verdict`` (one line, with the test that decided),
  ``calls`` (headline stat -> ``rose``, ``fell``, ``no change``, ``not tested`` or
  ``not compared``), ``deltas`` (stat -> ``a``, ``b``, ``delta``, ``lo``, ``hi``, ``method``,
  ``n``, ``note``) and ``notes``. ``method`` is ``paired bootstrap over N questions`` (``n`` = N;
  ``delta`` is then the mean of the per-question differences ``B_q - A_q``), ``unpaired normal
  approximation`` (``delta = b - a``, CI ``delta +- sqrt(h_a^2 + h_b^2)`` from the half-widths
  ``h`` of the two cards' CIs, ``n`` null), or empty with ``lo``/``hi`` null and ``note`` saying
  why there is no CI; ``delta`` is null when the stat is undefined in a card;
- ``cka``: ``matrix`` (``[L_a, L_b]`` linear CKA between every block output of the two models
  on the same inputs), ``diagonal`` (same depth only), ``layers_a``, ``layers_b``, ``inputs``
  (how many traces of ``A/run``), ``positions``, ``figure``; or ``matrix`` null and ``note``
  saying why it was not computed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from thinkscope.core.errors import UserError
from thinkscope.profile.card import load_card
from thinkscope.profile.numbers import RESAMPLES
from thinkscope.stats import cluster_bootstrap, percentile_ci

DIFF_SCHEMA = "thinkscope.profile-diff/1"
DIFF_JSON = "diff.json"
UNPAIRED = "unpaired normal approximation"
CKA_INPUTS = 64
CKA_POSITIONS = "completion"
CKA_FIGURE = "cka.png"


@dataclass
class Delta:
    """``b - a`` of one stat with its 95% CI (``lo``/``hi`` null: no CI, ``note`` says why)."""

    a: float | None
    b: float | None
    delta: float | None
    lo: float | None = None
    hi: float | None = None
    method: str = ""
    n: int | None = None
    note: str = ""

    def call(self, name: str) -> tuple[str, str]:
        """The call on this stat and the phrase that states it with the test that decided."""
        if self.delta is None:
            return "not compared", f"{name} not compared ({self.note})"
        if self.lo is None:
            return "not tested", f"{name} changed by {self.delta:+.3g}, not tested ({self.note})"
        ci = f"{self.delta:+.3g}, 95% CI [{self.lo:.3g}, {self.hi:.3g}], {self.method}"
        if self.lo > 0:
            return "rose", f"{name} rose ({ci})"
        if self.hi < 0:
            return "fell", f"{name} fell ({ci})"
        return "no change", f"no change in {name} (CI includes 0: {ci})"


def paired_method(n: int) -> str:
    return f"paired bootstrap over {n} questions"


def compare_stat(a: dict, b: dict, seed: int = 0) -> Delta:
    """``B - A`` of one stat of the card: paired over the questions both stats carry
    per-question values for (percentile bootstrap of the mean per-question difference,
    resampling questions), else unpaired from the two CIs, else without a CI."""
    if a["value"] is None or b["value"] is None:
        side, stat = ("A", a) if a["value"] is None else ("B", b)
        return Delta(a["value"], b["value"], None, note=f"undefined in {side}: {stat['note']}")
    pq_a, pq_b = a.get("per_question") or {}, b.get("per_question") or {}
    shared = sorted(q for q in pq_a.keys() & pq_b.keys() if np.isfinite([pq_a[q], pq_b[q]]).all())
    if len(shared) >= 2:
        diffs = np.array([pq_b[q] - pq_a[q] for q in shared], dtype=np.float64)
        mean, replicates = cluster_bootstrap(shared, diffs, RESAMPLES, seed)
        lo, hi = percentile_ci(replicates)
        notes = []
        if len(shared) < max(len(pq_a), len(pq_b)):
            notes.append(f"{len(pq_a)} questions in A, {len(pq_b)} in B")
        if not math.isclose(mean, b["value"] - a["value"], rel_tol=1e-9, abs_tol=1e-12):
            notes.append("delta = mean of per-question differences (questions weighted equally)")
        return Delta(
            a["value"],
            b["value"],
            mean,
            lo,
            hi,
            paired_method(len(shared)),
            len(shared),
            "; ".join(notes),
        )
    delta = b["value"] - a["value"]
    why = (
        "no per-question values to pair"
        if not (pq_a and pq_b)
        else f"{len(shared)} question with values in both: too few to pair"
    )
    missing = [side for side, s in (("A", a), ("B", b)) if s["lo"] is None or s["hi"] is None]
    if missing:
        who = "neither card has one" if len(missing) == 2 else f"{missing[0]} has none"
        note = f"no CI: {who}; {why}"
        return Delta(a["value"], b["value"], delta, note=note)
    spread = math.hypot((a["hi"] - a["lo"]) / 2, (b["hi"] - b["lo"]) / 2)
    note = f"{why}; CI from the half-widths of the two cards' CIs"
    return Delta(
        a["value"], b["value"], delta, delta - spread, delta + spread, UNPAIRED, None, note
    )


def compare_section(a: dict | None, b: dict | None) -> dict:
    """The deltas, calls and verdict line of one section (``None``: absent from that card)."""
    title = (a or b)["title"]
    if a is None or b is None:
        side = "A" if a is not None else "B"
        return _entry(title, f"not compared: the section is only in {side}")
    if a["skipped"] or b["skipped"]:
        why = [f"skipped in {s} ({e['skipped']})" for s, e in (("A", a), ("B", b)) if e["skipped"]]
        return _entry(title, "not compared: " + "; ".join(why))
    deltas = {k: compare_stat(v, b["stats"][k]) for k, v in a["stats"].items() if k in b["stats"]}
    notes = [
        f"only in {side}: {', '.join(only)}"
        for side, only in (
            ("A", [k for k in a["stats"] if k not in b["stats"]]),
            ("B", [k for k in b["stats"] if k not in a["stats"]]),
        )
        if only
    ]
    headline = [k for k in dict.fromkeys(a["headline"] + b["headline"]) if k in deltas]
    calls = {k: deltas[k].call(k) for k in headline}
    verdict = "; ".join(p for _, p in calls.values()) or "no headline stat in both cards"
    return _entry(title, verdict, {k: c for k, (c, _) in calls.items()}, deltas, notes)


def _entry(title, verdict, calls=None, deltas=None, notes=None) -> dict:
    deltas = {k: asdict(d) for k, d in (deltas or {}).items()}
    return {
        "title": title,
        "verdict": verdict,
        "calls": calls or {},
        "deltas": deltas,
        "notes": notes or [],
    }


def _differences(a, b, key: str) -> list[str]:
    """Dotted keys under ``key`` where ``a`` and ``b`` differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in dict.fromkeys([*a, *b])
            for d in _differences(a.get(k), b.get(k), f"{key}.{k}")
        ]
    return [] if a == b else [f"{key} ({a!r} in A, {b!r} in B)"]


def check_diff(a: Path, b: Path, out: Path) -> tuple[dict, dict]:
    """Both cards, after refusing (before anything is loaded or written) an unfinished or
    missing profile, two cards of different protocols, and an ``--out`` that holds files."""
    card_a, card_b = load_card(a), load_card(b)
    pa, pb = card_a["protocol"], card_b["protocol"]
    shared = pa["sections"].keys() & pb["sections"].keys()
    differ = _differences(
        {k: pa[k] for k in ("version", "budget", "run")}
        | {"sections": {k: v for k, v in pa["sections"].items() if k in shared}},
        {k: pb[k] for k in ("version", "budget", "run")}
        | {"sections": {k: v for k, v in pb["sections"].items() if k in shared}},
        "protocol",
    )
    if differ:
        raise UserError(
            f"{a} and {b} did not measure the same thing: {'; '.join(differ[:3])} differ"
            f"{'' if len(differ) <= 3 else f' (and {len(differ) - 3} more)'}; profile both"
            " with the same --budget and version"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} already holds something; choose another folder")
    return card_a, card_b


def diff_profiles(a: Path | str, b: Path | str, out: Path | str, cka: bool = True) -> Path:
    """Compare the profiles in folders ``a`` and ``b`` into ``out`` (``diff.json``,
    ``diff.html`` and the CKA figure); returns the path of ``diff.json``. With ``cka`` both
    models are loaded for the layer-by-layer CKA between them on traces of ``a``'s base run."""
    from thinkscope.core.atomic import atomic_dir, write_json
    from thinkscope.profile.diff_page import write_diff_page

    a, b, out = Path(a), Path(b), Path(out)
    card_a, card_b = check_diff(a, b, out)
    a, b = (p.parent if p.is_file() else p for p in (a, b))  # profile.json given: its folder
    names = list(dict.fromkeys([*card_a["sections"], *card_b["sections"]]))
    sections = {
        name: compare_section(card_a["sections"].get(name), card_b["sections"].get(name))
        for name in names
    }
    with atomic_dir(out) as tmp:
        similarity = (
            cross_model_cka(a, card_a["model"], card_b["model"], tmp)
            if cka
            else {"matrix": None, "note": "not computed: cross-model CKA was turned off"}
        )
        data = {
            "schema": DIFF_SCHEMA,
            "a": _identity(a, card_a),
            "b": _identity(b, card_b),
            "protocol": card_a["protocol"],
            "sections": sections,
            "cka": similarity,
        }
        write_json(tmp / DIFF_JSON, data)
        write_diff_page(tmp, data, card_a, card_b)
    return out / DIFF_JSON


def _identity(folder: Path, card: dict) -> dict:
    protocol = card["protocol"]
    return {
        "folder": str(folder.resolve()),
        "model": card["model"],
        "budget": protocol["budget"],
        "version": protocol["version"],
        "created": card["created"],
    }


def run_inputs(run: Path, k: int = CKA_INPUTS) -> list:
    """Up to ``k`` traces of the run folder ``run`` with a non-empty completion, evenly spaced
    (the same ones every time), as :class:`~thinkscope.interp.activations.TokenSeq` items."""
    from thinkscope.interp.activations import sequences_from_run

    seqs = [s for s in sequences_from_run(run)[0] if s.start < len(s.ids)]
    if len(seqs) < 3:
        raise UserError(f"{run} holds {len(seqs)} traces with a completion: too few for CKA")
    pick = np.unique(np.linspace(0, len(seqs) - 1, min(k, len(seqs))).round().astype(int))
    return [seqs[i] for i in pick]


def retokenized(seqs: list, tok_a, tok_b) -> tuple[list, str]:
    """``seqs`` (token ids of ``tok_a``) as ``tok_b`` reads them: the same ids when the two
    vocabularies agree, else the decoded text re-tokenized, prompt and completion apart so the
    completion positions stay known."""
    from thinkscope.interp.activations import TokenSeq

    if tok_a.get_vocab() == tok_b.get_vocab():
        return seqs, ""

    def again(ids) -> list[int]:
        text = tok_a.decode(list(ids), skip_special_tokens=False)
        return tok_b(text, add_special_tokens=False)["input_ids"]

    out = []
    for s in seqs:
        prompt, completion = again(s.ids[: s.start]), again(s.ids[s.start :])
        out.append(TokenSeq(tuple(prompt + completion), len(prompt)))
    return out, "the tokenizers differ: B reads the same texts, re-tokenized"


def cross_model_cka(a: Path, spec_a: dict, spec_b: dict, out: Path) -> dict:
    """Linear CKA between every block output of the two models on the completion-mean states
    of traces of ``a``'s base run (one model loaded at a time); ``matrix`` null and a ``note``
    when the run has no traces or a model cannot be loaded (files gone, weights changed)."""
    import tempfile

    from thinkscope.interp.activations import collect, load_rows
    from thinkscope.interp.cka import cka_matrix, heatmap
    from thinkscope.models import load_model
    from thinkscope.models.spec import ModelSpec

    with tempfile.TemporaryDirectory() as scratch:
        rows, layers, note = {}, {}, ""
        try:
            seqs = run_inputs(a / "run")
        except UserError as err:
            return {"matrix": None, "note": f"not computed: {err}"}
        for side, spec in (("A", spec_a), ("B", spec_b)):
            try:
                lm = load_model(ModelSpec.parse(**spec))
            except UserError as err:
                return {"matrix": None, "note": f"not computed: cannot load {side}'s model: {err}"}
            if side == "A":
                tok_a = lm.tokenizer
            else:
                seqs, note = retokenized(seqs, tok_a, lm.tokenizer)
            rows[side] = Path(scratch) / f"rows_{side}.npy"
            collect(lm, seqs, None, CKA_POSITIONS, rows=rows[side], batch_size=8)
            layers[side] = list(range(1, lm.n_layers + 1))
            del lm
        matrix = cka_matrix(load_rows(rows["A"]), load_rows(rows["B"]))
    heatmap(matrix, layers["A"], layers["B"], "A", "B").savefig(out / CKA_FIGURE, dpi=110)
    same = len(layers["A"]) == len(layers["B"])
    return {
        "matrix": matrix.tolist(),
        "diagonal": np.diag(matrix).tolist() if same else None,
        "layers_a": layers["A"],
        "layers_b": layers["B"],
        "inputs": len(seqs),
        "positions": CKA_POSITIONS,
        "figure": CKA_FIGURE,
        "note": "; ".join(
            n for n in (note, "" if same else "the models differ in depth: no diagonal") if n
        ),
    }
