"""Every command README.md tells a user to run is exercised by a named test, or README says why not.

The commands are those of the fenced shell blocks (```bash, ```sh, ```console) and of the
``command`` column of tables; ``&&`` chains count command by command. A block or table whose
preceding paragraph says "not run by the tests: needs ..." (data or hardware this machine lacks:
real benchmarks, several GPUs) is exempt. ``TESTED_BY`` maps each other command to the tests that
run it; a test named there must exist, and a mapping for a command README no longer shows fails.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL = {"bash", "sh", "shell", "console"}
EXEMPT = re.compile(r"not run by the tests: needs \w", re.I)
SETUP = "tests/test_repo.py::test_readme_opens_with_the_two_commands_and_ci_runs_the_second"  # .ci/run runs them
EXPERIMENTS = "tests/test_experiments.py::"
EXPLORER = "tests/test_browser.py::test_explorer_runs_in_jupyterlab_with_dropdowns_tables_and_figures"
EXPAND = "tests/data/test_walk.py::test_expand_inputs_reports_instead_of_raising"  # folders and globs
TESTED_BY = {
    "python3 -m venv .venv": (SETUP,),
    ". .venv/bin/activate": (SETUP, EXPLORER),
    "pip install -e '.[dev]'": (SETUP,),
    "pytest": (SETUP,),
    "dvc repro": (
        "tests/test_pipeline.py::test_repro_produces_every_output",  # on the smoke profile
        "tests/test_pipeline.py::test_second_repro_does_nothing_and_metrics_show",
    ),
    "jupyter lab notebooks/": (
        EXPLORER,
        "tests/test_browser.py::test_stage_notebook_opened_by_hand_reads_the_pipeline_outputs",
    ),
    "hrr-detect data/embedded/images/test --checkpoint models/hrr --output results/hrr_test_predictions.csv": (
        "tests/test_cli.py::test_corpus_run_exits_1_and_writes_the_good_files",
        EXPAND,
    ),
    "hrr-detect photo.jpg 'shots/**/*.png' -c models/cnn -o out.json --threshold 0.7": (
        "tests/test_cli.py::test_all_good_exits_0_with_json",
        EXPAND,
    ),
    "dvc exp run -n lower-c -S methods.spectrum_lr.model.C=0.001": (
        EXPERIMENTS + "test_exp_run_reruns_only_the_touched_stages",
    ),
    "dvc exp show --only-changed": (EXPERIMENTS + "test_exp_show_lists_the_experiment_beside_the_baseline",),
    "dvc exp diff": (EXPERIMENTS + "test_exp_diff_and_params_diff_show_the_change",),
    "dvc params diff": (EXPERIMENTS + "test_exp_diff_and_params_diff_show_the_change",),
    "dvc metrics diff": (EXPERIMENTS + "test_exp_diff_and_params_diff_show_the_change",),
    "dvc plots diff HEAD": (EXPERIMENTS + "test_plots_diff_writes_html_whose_plots_load",),
    "dvc plots show": (EXPERIMENTS + "test_plots_show_has_the_dvclive_training_curves",),
}


def split_commands(line: str) -> list[str]:
    """``a && b  # comment`` -> ["a", "b"], each re-quoted the way shlex writes it."""
    commands, current = [], []
    for token in shlex.split(line, comments=True):
        if token in ("&&", ";"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [shlex.join(c) for c in [*commands, current] if c]


def _paragraph_before(text: str, start: int) -> str:
    return text[:start].rstrip().split("\n\n")[-1]


def readme_blocks(text: str) -> list[tuple[str, str, str]]:
    """(language, body, paragraph before it) of every fenced block."""
    return [
        (m["lang"], m["body"], _paragraph_before(text, m.start()))
        for m in re.finditer(r"^```(?P<lang>[^\n]*)\n(?P<body>.*?)^```", text, re.M | re.S)
    ]


def table_commands(text: str) -> list[tuple[str, str]]:
    """(command, paragraph before the table) of each row of a table with a ``command`` column."""
    found = []
    for m in re.finditer(r"(?:^\|.*\|\n)+", text, re.M):
        rows = [[c.strip() for c in r.strip().strip("|").split("|")] for r in m.group(0).splitlines()]
        if "command" in rows[0]:
            col = rows[0].index("command")
            found += [(r[col].strip("`"), _paragraph_before(text, m.start())) for r in rows[2:]]
    return found


def user_commands(text: str) -> tuple[list[str], list[str]]:
    """(commands a test must run, commands README marks as needing what this machine lacks)."""
    tested, exempt = [], []
    for lang, body, before in readme_blocks(text):
        if lang.strip() not in SHELL:
            continue
        commands = [c for line in body.splitlines() for c in split_commands(line)]
        (exempt if EXEMPT.search(before) else tested).extend(commands)
    for command, before in table_commands(text):
        (exempt if EXEMPT.search(before) else tested).extend(split_commands(command))
    return tested, exempt


def _defined_tests(path: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}


README = (ROOT / "README.md").read_text()


def test_the_parsing_of_commands_blocks_and_tables():
    assert split_commands("a -x 'b c' && . env/bin/activate && d  # why") == ["a -x 'b c'", ". env/bin/activate", "d"]
    text = (
        "Intro.\n\n```bash\nrun one && run two\n```\n\nOn big machines (*not run by the tests: needs 8 GPUs*):\n\n"
        "```sh\nbig run\n```\n\n```yaml\nkey: value\n```\n\n| what | command |\n|---|---|\n| x | `tiny run` |\n"
    )
    assert user_commands(text) == (["run one", "run two", "tiny run"], ["big run"])


def test_every_fenced_block_names_its_language():
    untagged = [body.splitlines()[0] for lang, body, _ in readme_blocks(README) if not lang.strip()]
    assert not untagged, f"README blocks without a language (bash, yaml, text, ...): {untagged}"


def test_every_readme_command_is_run_by_a_named_test_or_marked():
    tested, exempt = user_commands(README)
    assert any("accelerate launch" in c for c in exempt) and any("real_benchmark.source" in c for c in exempt), exempt
    untested = sorted(set(tested) - set(TESTED_BY))
    assert not untested, f"README commands no test runs (add the test to TESTED_BY, or mark the block): {untested}"
    stale = sorted(set(TESTED_BY) - set(tested))
    assert not stale, f"TESTED_BY names commands README no longer shows: {stale}"


def test_the_named_tests_exist():
    for command, tests in TESTED_BY.items():
        for test in tests:
            file, name = test.split("::")
            assert name in _defined_tests(ROOT / file), f"{command!r}: {test} does not exist"


def test_the_experiment_block_is_what_test_experiments_runs():
    spec = importlib.util.spec_from_file_location("_experiments", ROOT / "tests" / "test_experiments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    blocks = [
        [c for line in body.splitlines() for c in split_commands(line)]
        for lang, body, _ in readme_blocks(README)
        if lang.strip() in SHELL
    ]
    assert list(module.LOOP) in blocks, f"README shows no block with exactly {module.LOOP}"
