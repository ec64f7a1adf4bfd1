"""profile.html in headless Chromium (:mod:`chromium`): every section is there, every figure
decodes, undefined numbers say why, and nothing is fetched; one screenshot per section."""

from __future__ import annotations

import json

import pytest

from chromium import BROWSER
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.protocol import BaseRun, Protocol
from thinkscope.profile.runner import run_profile

pytestmark = BROWSER


@pytest.fixture(scope="module")
def tiny_card(tiny_model_dir, tmp_path_factory):
    """The whole card of a tiny random llama (every sample wrong), quick sizes, small base run."""
    protocol = Protocol.of("quick").model_copy(
        update={"budget": "custom", "run": BaseRun(questions=4, n=2, max_new_tokens=8)}
    )
    out = tmp_path_factory.mktemp("profile") / "card"
    return run_profile(ModelSpec(model=str(tiny_model_dir)), out, protocol)


def test_every_section_renders_offline(tiny_card, browser, artifacts):
    card = json.loads(tiny_card.read_text())
    page = tiny_card.parent / "profile.html"
    assert "http://" not in page.read_text() and "https://" not in page.read_text()
    browser.call("Network.enable", session=True)
    browser.call("Page.navigate", session=True, url=page.resolve().as_uri())
    browser.wait_event("Page.loadEventFired")

    shown = browser.js("[...document.querySelectorAll('section')].map(s => s.dataset.section)")
    assert shown == list(card["sections"])
    figures = sum(len(s["figures"]) for s in card["sections"].values() if not s["skipped"])
    assert figures > 0
    assert browser.js("document.querySelectorAll('figure img').length") == figures
    assert browser.js("[...document.querySelectorAll('figure img')].every(i => i.naturalWidth)")
    undefined = [
        (f"{section}.{name}", stat["note"])
        for section, s in card["sections"].items()
        if not s["skipped"]
        for name, stat in s["stats"].items()
        if stat["value"] is None
    ]
    assert undefined  # every sample of a random model is wrong: the AUROCs cannot be defined
    for name, note in undefined:
        text = browser.js(f"document.querySelector('[data-stat=\"{name}\"]').textContent")
        assert "undefined" in text and note in text
    requests = [e for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    assert all(r["params"]["request"]["url"].startswith(("file:", "data:")) for r in requests)
    for name in card["sections"]:
        shot = artifacts / f"profile-{name}.png"
        browser.screenshot_of(f"section#{name}", shot)
        assert shot.stat().st_size > 2_000
    assert browser.errors() == []
