"""The CLI answers at once: help for every command, and a typo, import neither torch,
transformers nor sklearn (commands are imported lazily, heavy libraries inside functions)."""

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "sklearn")

WALK = """
import json, sys
from typer.core import TyperGroup
from thinkscope.cli.app import COMMANDS, app, load

def paths():
    for name, entry in COMMANDS.items():
        yield [name]
        command = load(name, entry)
        if isinstance(command, TyperGroup):
            yield from ([name, sub] for sub in command.list_commands(None))

report = {}
for args in [[], *paths()]:
    try:
        app([*args, "--help"], prog_name="thinkscope")
    except SystemExit as done:
        code = done.code
    report[" ".join(args) or "thinkscope"] = [code, [m for m in HEAVY if m in sys.modules]]
print(json.dumps(report))
"""


def test_help_of_every_command_imports_no_heavy_library():
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{WALK}"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report) > 30  # the root, every command and every subcommand
    bad = {command: result for command, result in report.items() if result != [0, []]}
    assert bad == {}


def test_a_typo_is_one_usage_error_without_heavy_imports():
    code = (
        "import sys\nfrom thinkscope.cli.app import main\nsys.argv = ['thinkscope', 'genrate']\n"
        "try:\n    main()\nexcept SystemExit as done:\n    code = done.code\n"
        f"print(code, [m for m in {HEAVY!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split()[0] == "2"
    assert done.stdout.strip().endswith("[]")
    assert "No such command 'genrate'" in done.stderr and "generate" in done.stderr


def test_the_command_table_lists_each_commands_own_help():
    from thinkscope.cli.app import COMMANDS, load

    for name, entry in COMMANDS.items():
        own = " ".join((load(name, entry).help or "").split())
        assert own.startswith(entry.help.rstrip(".")), name
