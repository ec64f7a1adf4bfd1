"""Write docs/compatibility.md, the model-family compatibility table, from the family tests.

    python scripts/compatibility.py                    # run the tests, write the page
    python scripts/compatibility.py --keep-failures    # write it even if a test fails

It runs pytest on the family test files that exist (FILES) with ``--junitxml`` and reads each
test case: its properties (``record_property``: ``family``, ``capability``, ``outcome`` as
``works`` or ``refused: <reason>``, and ``blocks``, what the family's blocks mix) and whether it
passed, failed or was skipped. A case without properties counts under its test name, for the
family named in its parameter id. One row per family, one column per capability; a cell is
``works``, ``refused: <reason>``, ``fails`` or ``skipped: <reason>``.

A failed test stops the script and nothing is written (exit 1, the failures listed), unless
``--keep-failures`` is given: then the failing cells read ``fails`` and the page says so at the
top.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = (
    "tests/test_families.py",
    "tests/test_sampler_families.py",
    "tests/test_families_workflows.py",
    "tests/test_families_cli.py",
    "tests/test_families_gpu.py",
)
OUT = ROOT / "docs" / "compatibility.md"

PAGE = """# Model compatibility

Which model families thinkscope works with, measured on tiny random models built from
transformers' own configs (`tests/tiny.py`: 4 layers, hidden size 64). Each cell is the outcome
of the test files named under the table: **works** (the tests pass), **refused** (thinkscope
declines in one line, before any work, for the reason given), **fails** or **skipped** (the
tests did not run here, e.g. without CUDA).

{banner}| {header} |
| {rule} |
{rows}
{notes}

*blocks*: what mixes tokens in a block; `a / b` layers of either kind, `a + b` both in one
block, *experts* where the feed-forward part routes to experts. `thinkscope models inspect
MODEL` prints this per layer for any model, with the layers APE and head ablation can measure
(those with softmax attention).

Generated from {cases} test cases ({counts}) with transformers {transformers} and torch
{torch}, from {files}.

## Regenerate

```bash
python scripts/compatibility.py                   # refuses to write if a test fails
python scripts/compatibility.py --keep-failures   # writes failing cells as "fails"
```
"""


@dataclass(frozen=True)
class Case:
    """One test case of the JUnit XML: its id, status and recorded properties."""

    name: str  # test_x[param-ids]
    status: str  # passed, failed or skipped
    message: str  # why it failed or was skipped
    properties: dict[str, str]


def run_pytest(files: list[str], xml: Path) -> None:
    """Run pytest on ``files`` (from the repository root) into the JUnit XML ``xml``."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    junit = [f"--junitxml={xml}", "-o", "junit_family=xunit1"]  # xunit1 keeps the properties
    done = subprocess.run([*command, *junit], cwd=ROOT)
    if done.returncode not in (0, 1) or not xml.is_file():  # 1: some tests failed
        sys.exit(f"pytest stopped with exit code {done.returncode}: no table written")


def read_cases(xml: Path) -> list[Case]:
    """Every test case in the JUnit XML file ``xml``."""
    cases = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        status, message = "passed", ""
        for tag, meaning in (("failure", "failed"), ("error", "failed"), ("skipped", "skipped")):
            found = case.find(tag)
            if found is not None:
                status, message = meaning, found.get("message") or ""
                break
        name = f"{case.get('classname', '')}::{case.get('name')}"
        cases.append(Case(name, status, message, properties))
    return cases


def family_of(case: Case, families: set[str]) -> str | None:
    """The family a case is about: its ``family`` property, else a parameter id that names one."""
    if "family" in case.properties:
        return case.properties["family"]
    ids = re.search(r"\[(.*)\]$", case.name)
    return next(
        (part for part in (ids.group(1).split("-") if ids else ()) if part in families), None
    )


def capability_of(case: Case) -> str:
    """Its ``capability`` property, else its test name without ``test_`` and parameters."""
    if "capability" in case.properties:
        return case.properties["capability"]
    test = case.name.rsplit("::", 1)[-1].split("[")[0]
    return test.removeprefix("test_").replace("_", " ")


def outcome_of(case: Case) -> str:
    """``fails``, ``skipped: <reason>``, or what it recorded (``works`` when nothing)."""
    if case.status == "failed":
        return "fails"
    if case.status == "skipped":
        return f"skipped: {case.message.removeprefix('Skipped: ')}".rstrip(": ")
    return case.properties.get("outcome", "works")


def cell(outcomes: list[str]) -> str:
    """One capability on one family: ``fails`` if any case failed, else the distinct outcomes
    of the cases that ran (``works`` first), else why they were skipped."""
    if "fails" in outcomes:
        return "fails"
    ran = [o for o in outcomes if not o.startswith("skipped")] or outcomes
    distinct = sorted(set(ran), key=lambda o: (o != "works", ran.index(o)))
    return "; ".join(distinct).replace("|", "\\|")


def table(cases: list[Case]) -> tuple[list[str], list[list[str]]]:
    """The header and rows: one row per family (in the order first seen), one column per
    capability."""
    families = {c.properties["family"] for c in cases if "family" in c.properties}
    blocks = {
        c.properties["family"]: c.properties["blocks"] for c in cases if "blocks" in c.properties
    }
    grid: dict[str, dict[str, list[str]]] = {}
    for case in cases:
        family = family_of(case, families)
        if family is not None:
            row = grid.setdefault(family, {})
            row.setdefault(capability_of(case), []).append(outcome_of(case))
    capabilities = list(dict.fromkeys(c for row in grid.values() for c in row))
    header = ["family", "blocks", *capabilities]
    rows = [
        [
            f"`{family}`",
            blocks.get(family, ""),
            *(cell(row.get(c, [])) or "not tested" for c in capabilities),
        ]
        for family, row in grid.items()
    ]
    return header, rows


def footnoted(rows: list[list[str]]) -> tuple[list[list[str]], str]:
    """``rows`` with each ``refused: <reason>`` cell shortened to ``refused [n]``, and the
    numbered reasons as lines to print under the table."""
    reasons: list[str] = []

    def short(cell: str) -> str:
        if not cell.startswith("refused: "):
            return cell
        reason = cell.removeprefix("refused: ")
        if reason not in reasons:
            reasons.append(reason)
        return f"refused [{reasons.index(reason) + 1}]"

    shortened = [[short(cell) for cell in row] for row in rows]
    notes = "".join(f"\n[{n}] {reason}\n" for n, reason in enumerate(reasons, start=1))
    return shortened, notes


def page(cases: list[Case], files: list[str]) -> str:
    """The markdown page for ``cases`` run from ``files``."""
    header, rows = table(cases)
    rows, notes = footnoted(rows)
    failed = [c.name for c in cases if c.status == "failed"]
    banner = (
        f"!!! warning\n    {len(failed)} test case(s) failed when this table was made.\n\n"
        if failed
        else ""
    )
    counts = {s: sum(c.status == s for c in cases) for s in ("passed", "failed", "skipped")}
    return PAGE.format(
        banner=banner,
        header=" | ".join(header),
        rule=" | ".join("---" for _ in header),
        rows="\n".join(f"| {' | '.join(row)} |" for row in rows),
        notes=notes,
        cases=len(cases),
        counts=", ".join(f"{n} {s}" for s, n in counts.items() if n),
        transformers=version("transformers"),
        torch=version("torch"),
        files=", ".join(f"`{f}`" for f in files),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="the page to write")
    parser.add_argument(
        "--keep-failures", action="store_true", help='write failing cells as "fails"'
    )
    args = parser.parse_args(argv)
    files = [f for f in FILES if (ROOT / f).is_file()]
    with tempfile.TemporaryDirectory() as folder:
        xml = Path(folder) / "junit.xml"
        run_pytest(files, xml)
        cases = read_cases(xml)
    failed = [c.name for c in cases if c.status == "failed"]
    if failed and not args.keep_failures:
        listed = "\n  ".join(failed)
        sys.exit(f"{len(failed)} test case(s) failed; no table written:\n  {listed}")
    text = page(cases, files)
    partial = args.out.with_suffix(".tmp")
    partial.write_text(text)
    os.replace(partial, args.out)
    print(f"wrote {args.out} ({len(cases)} test cases)")


if __name__ == "__main__":
    main()
