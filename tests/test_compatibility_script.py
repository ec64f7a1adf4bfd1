"""``scripts/compatibility.py`` turns the family tests' JUnit XML into the docs' table."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "compatibility.py"
XML = """<testsuites><testsuite>
<testcase classname="tests.test_families" name="test_anatomy[mamba2]"><properties>
  <property name="family" value="mamba2"/><property name="blocks" value="SSM"/>
  <property name="capability" value="anatomy"/><property name="outcome" value="works"/>
</properties></testcase>
<testcase classname="tests.test_families" name="test_anatomy[lfm2]"><properties>
  <property name="family" value="lfm2"/><property name="blocks" value="convolution / attention"/>
  <property name="capability" value="anatomy"/><property name="outcome" value="works"/>
</properties></testcase>
<testcase classname="tests.test_w" name="test_ape[mamba2]"><properties>
  <property name="family" value="mamba2"/><property name="capability" value="APE"/>
  <property name="outcome" value="refused: no layer has attention"/>
</properties></testcase>
<testcase classname="tests.test_s" name="test_greedy_matches[3-mamba2]"/>
<testcase classname="tests.test_s" name="test_greedy_matches[3-lfm2]">{lfm2_greedy}</testcase>
<testcase classname="tests.test_s" name="test_greedy_matches_gpu[lfm2]">
  <skipped message="needs CUDA"/></testcase>
<testcase classname="tests.test_s" name="test_greedy_matches_gpu[mamba2]">
  <skipped message="needs CUDA"/></testcase>
<testcase classname="tests.test_s" name="test_no_family_here"/>
</testsuite></testsuites>"""


@pytest.fixture
def script(monkeypatch):
    spec = importlib.util.spec_from_file_location("compatibility", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "compatibility", module)  # for its dataclass
    spec.loader.exec_module(module)
    return module


def rows(text: str) -> dict[str, list[str]]:
    """The table's cells by family."""
    cells = [line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith("| `")]
    return {row[0].strip("`"): row[1:] for row in cells}


def fake_pytest(tmp_path, monkeypatch, script, lfm2_greedy=""):
    """The script's pytest run replaced by a fixed JUnit XML."""
    source = tmp_path / "given.xml"
    source.write_text(XML.format(lfm2_greedy=lfm2_greedy))
    monkeypatch.setattr(script, "run_pytest", lambda files, xml: shutil.copy(source, xml))


def test_the_table_has_a_row_per_family_and_a_column_per_capability(script, tmp_path, monkeypatch):
    fake_pytest(tmp_path, monkeypatch, script)
    out = tmp_path / "compatibility.md"
    script.main(["--out", str(out)])
    text = out.read_text()
    assert "| family | blocks | anatomy | APE | greedy matches | greedy matches gpu |" in text
    assert "| `mamba2` | SSM | works | refused [1] | works | skipped: needs CUDA |" in text
    assert "\n[1] no layer has attention\n" in text  # the reason, once, under the table
    assert (
        "| `lfm2` | convolution / attention | works | not tested | works | skipped: needs CUDA |"
        in text
    )
    assert "no family here" not in text and "warning" not in text
    assert "8 test cases (6 passed, 2 skipped)" in text


def test_a_failed_test_writes_no_table_unless_failures_are_kept(script, tmp_path, monkeypatch):
    fake_pytest(tmp_path, monkeypatch, script, '<failure message="assert 1 == 2"/>')
    out = tmp_path / "compatibility.md"
    with pytest.raises(SystemExit, match=r"1 test case\(s\) failed; no table written"):
        script.main(["--out", str(out)])
    assert not out.exists()
    script.main(["--out", str(out), "--keep-failures"])
    text = out.read_text()
    assert "!!! warning\n    1 test case(s) failed" in text
    assert rows(text)["lfm2"][:4] == ["convolution / attention", "works", "not tested", "fails"]
