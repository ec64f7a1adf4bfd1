"""``profile diff``: paired and unpaired deltas, verdicts, refusals and cross-model CKA, on
hand-built profile folders (and two tiny random models for the CKA)."""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from chromium import CHROMIUM
from scored_run import make_scored_run
from thinkscope.core.errors import UserError
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.card import SCHEMA
from thinkscope.profile.diff import UNPAIRED, diff_profiles
from thinkscope.profile.protocol import Protocol

IDS = [f"q{i:02d}" for i in range(32)]


def _png() -> bytes:
    """A valid 1 x 1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def stat(per_question: dict | None = None, value=None, lo=None, hi=None, note="") -> dict:
    """A stat as profile.json holds it; a mean of ``per_question`` when given."""
    if per_question is not None and value is None:
        value = float(np.mean(list(per_question.values())))
        lo, hi = value - 0.1, value + 0.1
    return {
        "value": value,
        "lo": lo,
        "hi": hi,
        "n": 256,
        "unit": "",
        "method": "m",
        "note": note,
        "per_question": per_question,
    }


def section(title: str, stats: dict, headline: list, figure: str | None = None, skipped=None):
    figures = [{"file": figure, "caption": f"{title} figure"}] if figure else []
    return {
        "title": title,
        "stats": stats,
        "headline": headline,
        "tables": {},
        "figures": figures,
        "notes": [],
        "skipped": skipped,
    }


def write_profile(folder: Path, sections: dict, model: dict | None = None, **protocol) -> Path:
    """A finished profile folder: ``profile.json`` and a tiny PNG per figure."""
    folder.mkdir(parents=True)
    for entry in sections.values():
        for ref in entry["figures"]:
            (folder / ref["file"]).parent.mkdir(parents=True, exist_ok=True)
            (folder / ref["file"]).write_bytes(_png())
    card = {
        "schema": SCHEMA,
        "protocol": Protocol(**protocol).model_dump(),
        "model": model or {"model": folder.name, "weights": f"sha:{folder.name}"},
        "machine": {"cpu": "test"},
        "created": "2026-01-01T00:00:00",
        "sections": sections,
        "timing": {"sections": {k: 1.0 for k in sections}},
    }
    (folder / "profile.json").write_text(json.dumps(card))
    return folder


def base_sections(accuracy: dict, dtr: dict, skipped: str | None = None) -> dict:
    return {
        "accuracy": section(
            "Accuracy and length",
            {"accuracy": stat(accuracy), "pass@8": stat(value=0.5, note="exact")},
            ["accuracy"],
            figure="sections/accuracy/figures/length.png",
        ),
        "depth": section("Depth", {"dtr": stat(dtr)}, ["dtr"]),
        "predictors": section(
            "Predictors",
            {} if skipped else {"auroc.dtr": stat(value=0.5, lo=0.4, hi=0.6)},
            [] if skipped else ["auroc.dtr"],
            skipped=skipped,
        ),
    }


def pair_sections() -> tuple[dict, dict, dict, dict]:
    """A and B: B's accuracy 0.12 higher on every question (per-question values written in
    the reverse order), B's DTR the same up to noise, B's predictors section skipped."""
    rng = np.random.default_rng(1)
    acc_a = dict(zip(IDS, rng.uniform(0.0, 0.8, 32), strict=True))
    acc_b = {q: acc_a[q] + 0.12 + rng.normal(0, 0.03) for q in reversed(IDS)}
    dtr_a = dict(zip(IDS, rng.uniform(0.1, 0.3, 32), strict=True))
    dtr_b = {q: v + rng.normal(0, 0.02) for q, v in dtr_a.items()}
    sections_b = base_sections(acc_b, dtr_b, skipped="no attention")
    return base_sections(acc_a, dtr_a), sections_b, acc_a, acc_b


@pytest.fixture
def pair(tmp_path):
    sections_a, sections_b, acc_a, acc_b = pair_sections()
    a = write_profile(tmp_path / "a", sections_a)
    b = write_profile(tmp_path / "b", sections_b)
    return a, b, acc_a, acc_b


def reference_ci(diffs: np.ndarray, resamples: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap of the mean difference, resampling questions (seed 0)."""
    idx = np.random.default_rng(0).integers(0, len(diffs), (resamples, len(diffs)), np.int32)
    lo, hi = np.quantile(diffs[idx].mean(axis=1), [0.025, 0.975])
    return float(lo), float(hi)


def test_paired_delta_is_the_bootstrap_of_per_question_differences(pair, tmp_path):
    a, b, acc_a, acc_b = pair
    data = json.loads(diff_profiles(a, b, tmp_path / "d", cka=False).read_text())
    delta = data["sections"]["accuracy"]["deltas"]["accuracy"]
    diffs = np.array([acc_b[q] - acc_a[q] for q in sorted(IDS)])
    lo, hi = reference_ci(diffs)
    assert delta["method"] == "paired bootstrap over 32 questions" and delta["n"] == 32
    assert delta["delta"] == pytest.approx(diffs.mean(), abs=1e-12)
    assert delta["delta"] == pytest.approx(delta["b"] - delta["a"], abs=1e-12)
    assert (delta["lo"], delta["hi"]) == pytest.approx((lo, hi), abs=1e-12)
    assert hi - lo < 0.05  # paired: the spread of accuracy over questions cancels
    verdict = data["sections"]["accuracy"]["verdict"]
    assert verdict.startswith(f"accuracy rose (+{diffs.mean():.3g}, 95% CI [{lo:.3g}, {hi:.3g}]")
    assert "paired bootstrap over 32 questions" in verdict
    assert data["sections"]["accuracy"]["calls"] == {"accuracy": "rose"}
    dtr = data["sections"]["depth"]
    assert dtr["calls"] == {"dtr": "no change"} and dtr["verdict"].startswith("no change in dtr")
    page = (tmp_path / "d" / "diff.html").read_text()
    assert page.count("data:image/png;base64,") == 2  # the length figure of A and of B
    assert 'data-section="accuracy"' in page and "accuracy rose" in page


def test_identical_cards_show_no_change(pair, tmp_path):
    a = pair[0]
    data = json.loads(diff_profiles(a, a, tmp_path / "d", cka=False).read_text())
    for name, entry in data["sections"].items():
        assert set(entry["calls"].values()) == {"no change"}, name
        assert entry["verdict"].startswith("no change in ")
    delta = data["sections"]["accuracy"]["deltas"]["accuracy"]
    assert (delta["delta"], delta["lo"], delta["hi"]) == (0, 0, 0)


def test_unpaired_and_untested_fallbacks(tmp_path):
    """Without per-question values the CI comes from the two CIs' half-widths; without CIs
    there is none and no call is made."""
    a = write_profile(
        tmp_path / "a",
        {
            "s": section(
                "S",
                {
                    "x": stat(value=0.5, lo=0.4, hi=0.6),
                    "y": stat(value=0.5, note="exact"),
                    "z": stat(value=0.5, lo=0.45, hi=0.55),
                },
                ["x", "y", "z"],
            )
        },
    )
    b = write_profile(
        tmp_path / "b",
        {
            "s": section(
                "S",
                {
                    "x": stat(value=0.8, lo=0.7, hi=0.9),
                    "y": stat(value=0.9, note="exact"),
                    "z": stat(value=0.6, lo=0.45, hi=0.75),
                },
                ["x", "y", "z"],
            )
        },
    )
    entry = json.loads(diff_profiles(a, b, tmp_path / "d", cka=False).read_text())["sections"]["s"]
    x = entry["deltas"]["x"]
    spread = math.hypot(0.1, 0.1)
    assert x["method"] == UNPAIRED and x["n"] is None
    assert (x["delta"], x["lo"], x["hi"]) == pytest.approx((0.3, 0.3 - spread, 0.3 + spread))
    z = entry["deltas"]["z"]  # +0.1 with half-widths 0.05 and 0.15: the CI reaches below 0
    assert z["lo"] == pytest.approx(0.1 - math.hypot(0.05, 0.15)) and z["lo"] < 0
    y = entry["deltas"]["y"]
    assert y["delta"] == pytest.approx(0.4) and y["lo"] is None and "no CI" in y["note"]
    assert entry["calls"] == {"x": "rose", "y": "not tested", "z": "no change"}


def test_skipped_or_undefined_in_one_card_says_so(pair, tmp_path):
    a, b = pair[:2]
    data = json.loads(diff_profiles(a, b, tmp_path / "d", cka=False).read_text())
    predictors = data["sections"]["predictors"]
    assert predictors["verdict"] == "not compared: skipped in B (no attention)"
    assert predictors["deltas"] == {} and predictors["calls"] == {}
    page = (tmp_path / "d" / "diff.html").read_text()
    assert "Not measured: no attention" in page
    c = write_profile(tmp_path / "c", base_sections({q: 0.5 for q in IDS}, {q: 0.2 for q in IDS}))
    card = json.loads((c / "profile.json").read_text())
    card["sections"]["depth"]["stats"]["dtr"] = stat(value=None, note="constant metric")
    (c / "profile.json").write_text(json.dumps(card))
    depth = json.loads(diff_profiles(a, c, tmp_path / "e", cka=False).read_text())["sections"]
    assert depth["depth"]["deltas"]["dtr"]["delta"] is None
    assert depth["depth"]["verdict"] == "dtr not compared (undefined in B: constant metric)"


def test_refusals_come_before_anything_is_written(pair, tmp_path):
    a, b = pair[:2]
    out = tmp_path / "out"
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("model: x\n")
    with pytest.raises(UserError, match="holds no finished profile"):
        diff_profiles(a, unfinished, out)
    with pytest.raises(UserError, match="holds no finished profile"):
        diff_profiles(tmp_path / "missing", b, out)
    sections = base_sections({q: 0.5 for q in IDS}, {q: 0.2 for q in IDS})
    other = write_profile(tmp_path / "standard", sections, budget="standard")
    with pytest.raises(UserError, match=r"protocol\.budget \('quick' in A, 'standard' in B\)"):
        diff_profiles(a, other, out)
    hot = write_profile(tmp_path / "hot", sections, run={"temperature": 1.0})
    with pytest.raises(UserError, match=r"protocol\.run\.temperature \(0\.7 in A, 1\.0 in B\)"):
        diff_profiles(a, hot, out)
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="--out .* already holds something"):
        diff_profiles(a, b, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def _save_tiny(path: Path, seed: int) -> dict:
    from tiny import tiny_model, tiny_tokenizer

    tiny_model("llama", n_layers=3, seed=seed).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return ModelSpec(model=str(path)).resolved().model_dump()


def _completion_means(model_dir: Path, traces) -> np.ndarray:
    """``[N, L, d]`` mean block output over each trace's completion, one trace at a time, read
    with plain forward hooks on the decoder layers."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    seen: list = []
    hooks = [
        layer.register_forward_hook(
            lambda _m, _i, out: seen.append(out[0] if isinstance(out, tuple) else out)
        )
        for layer in model.model.layers
    ]
    rows = []
    for prompt, completion in zip(traces["prompt_ids"], traces["token_ids"], strict=True):
        seen.clear()
        with torch.no_grad():
            model(input_ids=torch.tensor([[*map(int, prompt), *map(int, completion)]]))
        rows.append([h[0, len(prompt) :].double().mean(0).numpy() for h in seen])
    for hook in hooks:
        hook.remove()
    return np.array(rows)


def numpy_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA in feature space: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Profiles A and B of two tiny random llamas saved to disk (A with a base run), and
    their diff with CKA."""
    root = tmp_path_factory.mktemp("two-models")
    sections_a, sections_b, _, _ = pair_sections()
    a = write_profile(root / "a", sections_a, model=_save_tiny(root / "model_a", seed=0))
    b = write_profile(root / "b", sections_b, model=_save_tiny(root / "model_b", seed=1))
    make_scored_run(a / "run", problems=4, n=4)
    diff_profiles(a, b, root / "diff")
    return root


def test_cross_model_cka_matches_a_numpy_reference(two_models):
    from thinkscope.runstore.folder import Run

    cka = json.loads((two_models / "diff" / "diff.json").read_text())["cka"]
    traces = Run.open(two_models / "a" / "run").traces()
    rows_a = _completion_means(two_models / "model_a", traces)
    rows_b = _completion_means(two_models / "model_b", traces)
    reference = np.array(
        [[numpy_cka(rows_a[:, i], rows_b[:, j]) for j in range(3)] for i in range(3)]
    )
    assert cka["inputs"] == 16 and cka["layers_a"] == cka["layers_b"] == [1, 2, 3]
    # fp32 activations, batched with padding vs one at a time: CKA agrees to ~1e-6
    np.testing.assert_allclose(cka["matrix"], reference, atol=1e-4)
    np.testing.assert_allclose(cka["diagonal"], np.diag(reference), atol=1e-4)
    assert np.ptp(reference) > 0.05 and reference.max() < 0.999  # not a trivial matrix
    page = (two_models / "diff" / "diff.html").read_text()
    assert (two_models / "diff" / "cka.png").is_file() and "CKA, same layer" in page


def test_cka_says_why_when_a_model_is_gone_changed_or_off(two_models, tmp_path):
    a, card = two_models / "a", json.loads((two_models / "b" / "profile.json").read_text())
    gone = write_profile(
        tmp_path / "gone",
        card["sections"],
        model={**card["model"], "model": str(tmp_path / "deleted-model")},
    )
    cka = json.loads(diff_profiles(a, gone, tmp_path / "e").read_text())["cka"]
    assert cka["matrix"] is None and "deleted-model" in cka["note"]
    assert cka["note"].startswith("not computed: cannot load B's model: ")
    assert "Cross-model CKA not computed" in (tmp_path / "e" / "diff.html").read_text()
    off = json.loads(diff_profiles(a, gone, tmp_path / "f", cka=False).read_text())["cka"]
    assert off["matrix"] is None and "turned off" in off["note"]
    other = write_profile(  # B's files hold other weights than its card measured
        tmp_path / "other", card["sections"], model={**card["model"], "weights": "sha256:0"}
    )
    cka = json.loads(diff_profiles(a, other, tmp_path / "g").read_text())["cka"]
    assert cka["matrix"] is None and "the weights of" in cka["note"] and "changed" in cka["note"]


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not found")
def test_diff_page_in_chromium(two_models, browser, artifacts):
    data = json.loads((two_models / "diff" / "diff.json").read_text())
    page = two_models / "diff" / "diff.html"
    browser.call("Network.enable", session=True)
    browser.call("Page.navigate", session=True, url=page.resolve().as_uri())
    browser.wait_event("Page.loadEventFired")
    shown = browser.js("[...document.querySelectorAll('section')].map(s => s.dataset.section)")
    assert shown == [*data["sections"], "cka"]
    verdicts = browser.js("[...document.querySelectorAll('.verdict')].map(v => v.textContent)")
    assert verdicts == [entry["verdict"] for entry in data["sections"].values()]
    # two length figures (A and B) and the CKA heatmap, all decoded
    assert browser.js("document.querySelectorAll('figure img').length") == 3
    assert browser.js("[...document.querySelectorAll('figure img')].every(i => i.naturalWidth)")
    columns = browser.js(
        "[...document.querySelectorAll('#accuracy .side > div')]"
        ".map(d => [d.getBoundingClientRect().left, d.getBoundingClientRect().right])"
    )
    assert len(columns) == 2 and columns[1][0] >= columns[0][1]  # A beside B
    rose = browser.js("document.querySelector('#accuracy tr[data-stat=accuracy] td.up') !== null")
    assert rose
    side_b = browser.js("document.querySelector('[data-stat=\"B.accuracy.accuracy\"]').textContent")
    assert f"{data['sections']['accuracy']['deltas']['accuracy']['b']:.3f}" in side_b
    requests = [e for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    assert all(r["params"]["request"]["url"].startswith(("file:", "data:")) for r in requests)
    for name in shown:
        shot = artifacts / f"profile-diff-{name}.png"
        browser.screenshot_of(f"section#{name}", shot)
        assert shot.stat().st_size > 2_000
    assert browser.errors() == []
