"""`make mutation`: mutation testing (mutmut 3) of chosen modules, each against its own tests.

Outside CI: a module's run takes minutes of CPU. For each module it prepares a scratch copy of
the project in `.mutation/<module>/` (mutmut works in a `mutants/` folder of the directory it
runs in and reads its settings from that directory's pyproject.toml, so each module gets its
own), runs `mutmut run` there on SQLite only (PostgreSQL tests deselected, the variable unset)
with the module's test folder, and prints one line per module:

    sending/worker: 180/200 killed (90.0%), survived 12, equivalent 8, score 95.7%

The score leaves out the mutants listed as equivalent (a change no caller can observe) in
docs/mutation-equivalents.toml, each with its reason; a listed mutant is matched by its module,
function and the mutated line, so renumbering after an edit does not lose it. Survivors that
are not listed are printed with their diff (`--quiet` hides them).

    python -m bench.mutation                       every module below
    python -m bench.mutation subscribers/importer  one (make mutation MODULES=...)
    python -m bench.mutation --list                the module names
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
WORK = REPO / ".mutation"
EQUIVALENTS = REPO / "docs" / "mutation-equivalents.toml"
# What a scratch copy needs to run the tests: the packages, what they read at run time.
COPIED = [
    "newsletter",
    "subscribers",
    "templates",
    "tests",
    "examples",
    "scheduler.py",
    "pyproject.toml",
]


@dataclass(frozen=True)
class Target:
    sources: tuple[str, ...]
    tests: tuple[str, ...]
    # Tests that run the code in a child process (kills, signals) never see a mutant: mutmut
    # swaps functions inside the test process only. They would cost minutes and kill nothing.
    ignore: tuple[str, ...] = ()
    extra: tuple[str, ...] = field(default=())


TARGETS: dict[str, Target] = {
    "sending/worker": Target(
        ("newsletter/sending/worker.py",),
        ("tests/sending",),
        ignore=("tests/sending/test_crash.py", "tests/sending/test_interrupt.py"),
        # Four threads through mutmut's trampolines lose a batch of this test even with no
        # mutant applied (its clean run fails); the threaded paths have their own tests.
        extra=(
            "--deselect=tests/sending/test_send.py::"
            "test_an_issue_goes_out_in_requests_of_1000_each_address_once[sqlite]",
        ),
    ),
    "mail/sendgrid_transport": Target(
        ("newsletter/mail/sendgrid_transport.py",),
        ("tests/sending",),
        ignore=("tests/sending/test_crash.py", "tests/sending/test_interrupt.py"),
    ),
    "subscribers/importer": Target(
        ("subscribers/importer.py", "subscribers/csv_reading.py"), ("tests/subscribers",)
    ),
    # One person across the domains: their links, export and erasure, each owner's part.
    "people": Target(
        (
            "newsletter/people/erasure.py",
            "newsletter/people/export.py",
            "newsletter/people/links.py",
            "newsletter/sending/person.py",
            "newsletter/tracking/person.py",
        ),
        ("tests/subscribers", "tests/web/test_subscriber_screens.py", "tests/web/test_links.py"),
    ),
    "tracking/webhook": Target(
        ("newsletter/tracking/webhook.py", "newsletter/tracking/events.py"),
        ("tests/tracking",),
    ),
    # The figures kept as events arrive, per variant too (issues 19 and 17).
    "tracking/rollups": Target(("newsletter/tracking/rollups.py",), ("tests/tracking",)),
    # Subject tests: the split, the figures, the decision written once (issue 17).
    "audience/subject_tests": Target(
        (
            "newsletter/audience/subject_tests.py",
            "newsletter/audience/split.py",
            "newsletter/issues/subjects.py",
        ),
        ("tests/audience/test_subject_tests.py", "tests/audience/test_subject_tests_web.py"),
    ),
    # Segments: the rule, who is in one, the send that goes to one (issue 17).
    "audience": Target(
        ("newsletter/audience/rules.py", "newsletter/audience/service.py"),
        ("tests/audience",),
    ),
}


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def prepare(name: str, target: Target) -> Path:
    """A fresh scratch copy for one module, with mutmut's settings in its pyproject.toml."""
    scratch = WORK / name.replace("/", "-")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "artifacts")
    for item in COPIED:
        source = REPO / item
        if source.is_dir():
            shutil.copytree(source, scratch / item, ignore=ignore)
        else:
            shutil.copy2(source, scratch / item)
    # The tests find shared/ beside the project root; in mutants/ that root is the scratch.
    (scratch / "shared").symlink_to(SHARED, target_is_directory=True)
    args = ["-p", "no:cacheprovider", "-k", "not postgresql", "--timeout", "120"]
    selection = [*target.tests, *(f"--ignore={path}" for path in target.ignore), *target.extra]
    config = (
        "\n[tool.mutmut]\n"
        'source_paths = ["newsletter", "subscribers"]\n'
        f"only_mutate = {_toml_list(list(target.sources))}\n"
        'also_copy = ["templates", "examples", "scheduler.py"]\n'
        f"pytest_add_cli_args = {_toml_list(args)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(selection)}\n"
        "use_git_change_detection = false\n"
    )
    with (scratch / "pyproject.toml").open("a", encoding="utf-8") as f:
        f.write(config)
    return scratch


def _changed_line(diff: str) -> str:
    """The mutated line of a mutant's diff, whitespace-normalised (its identity here)."""
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and line[1:2] != "+"]
    return " ".join(" ".join(added).split())


def _function(mutant: str) -> str:
    # newsletter.sending.worker.x__send__mutmut_12 -> _send; a method is xǁClassǁname.
    mangled = mutant.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    if mangled.startswith("xǁ"):
        return mangled.removeprefix("xǁ").replace("ǁ", ".")
    return mangled.removeprefix("x_")


@dataclass
class Score:
    name: str
    total: int = 0
    killed: int = 0
    equivalent: int = 0
    survivors: list[tuple[str, str]] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)

    @property
    def score(self) -> float:
        counted = self.total - self.equivalent
        return 100.0 * self.killed / counted if counted else 100.0

    def line(self) -> str:
        others = "".join(f", {status} {n}" for status, n in sorted(self.other.items()))
        return (
            f"{self.name}: {self.killed}/{self.total} killed "
            f"({100.0 * self.killed / max(self.total, 1):.1f}%), survived "
            f"{len(self.survivors)}, equivalent {self.equivalent}{others}, "
            f"score {self.score:.1f}% of the non-equivalent"
        )


def load_equivalents() -> list[dict[str, str]]:
    if not EQUIVALENTS.exists():
        return []
    entries: list[dict[str, str]] = tomllib.loads(EQUIVALENTS.read_text("utf-8")).get(
        "equivalent", []
    )
    return entries


def collect(name: str, target: Target, scratch: Path) -> Score:
    """Read mutmut's results in `scratch` (mutmut's own modules need it as the cwd)."""
    os.chdir(scratch)
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    listed = [e for e in load_equivalents() if e.get("module") == name]
    score = Score(name)
    for source in target.sources:
        data = SourceFileMutationData(path=Path(source))
        data.load()
        for mutant, exit_code in sorted(data.exit_code_by_key.items()):
            status = status_by_exit_code[exit_code]
            if status == "not checked":  # outside the sample
                continue
            score.total += 1
            if status in ("killed", "timeout", "caught by type check"):
                score.killed += 1
                continue
            diff = get_diff_for_mutant(mutant, path=Path(source))
            if status != "survived":
                score.other[status] = score.other.get(status, 0) + 1
                score.survivors.append((mutant, f"({status})\n{diff}"))
                continue
            line = _changed_line(diff)
            if any(
                e["function"] == _function(mutant) and " ".join(e["mutated"].split()) == line
                for e in listed
            ):
                score.equivalent += 1
            else:
                score.survivors.append((mutant, diff))
    os.chdir(REPO)
    return score


# mutmut's own first step (copy, then write every mutant), run alone to learn the names.
_GENERATE = (
    "import mutmut.__main__ as m, os; os.makedirs('mutants', exist_ok=True); "
    "m.copy_src_dir(); m.copy_also_copy_files(); m.setup_source_paths(); m.create_mutants(1)"
)


def sample_names(
    target: Target,
    scratch: Path,
    env: dict[str, str],
    size: int | None,
    only: Sequence[str] = (),
) -> list[str]:
    """`size` mutant names drawn evenly (a fixed seed: the same sample each run); `only`: of
    the functions whose mutant names contain one of these (a change's own functions)."""
    subprocess.run(
        [sys.executable, "-c", _GENERATE], cwd=scratch, env=env, check=True, capture_output=True
    )
    names: list[str] = []
    for source in target.sources:
        meta = json.loads((scratch / "mutants" / f"{source}.meta").read_text("utf-8"))
        names.extend(sorted(meta["exit_code_by_key"]))
    if only:
        names = [n for n in names if any(part in n for part in only)]
    if size is None:
        return names
    return sorted(random.Random(12).sample(names, min(size, len(names))))


def run(
    name: str,
    target: Target,
    *,
    max_children: int,
    quiet: bool,
    sample: int | None,
    only: Sequence[str] = (),
) -> Score:
    scratch = prepare(name, target)
    env = {k: v for k, v in os.environ.items() if k != "NEWSLETTER_TEST_POSTGRES_URL"}
    mutmut = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    if sample or only:
        chosen = sample_names(target, scratch, env, sample, only)
        if not chosen:
            raise SystemExit(f"{name}: no mutant's name contains any of {list(only)}")
        mutmut += chosen
    started = time.monotonic()
    log = scratch / "mutmut.log"
    with log.open("w") as out:
        code = subprocess.call(mutmut, cwd=scratch, env=env, stdout=out, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - started
    if code:
        print(f"{name}: mutmut exited {code}; see {log}", flush=True)
    score = collect(name, target, scratch)
    if not quiet:
        for mutant, diff in score.survivors:
            print(f"--- survived: {mutant}\n{diff}\n", flush=True)
    print(f"{score.line()} [{elapsed:.0f} s]", flush=True)
    return score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module names (default: all)")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once")
    parser.add_argument("--quiet", action="store_true", help="print the scores only")
    parser.add_argument("--list", action="store_true", help="print the module names")
    parser.add_argument("--sample", type=int, help="test only this many mutants per module")
    parser.add_argument("--minimum", type=float, default=0.0, help="fail under this score")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="only mutants of functions whose names contain this (repeatable): a change's own",
    )
    options = parser.parse_args()
    if options.list:
        print("\n".join(TARGETS))
        return 0
    unknown = [m for m in options.modules if m not in TARGETS]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    with open("/proc/loadavg") as f:
        load = f.read().strip()
    print(f"mutmut on SQLite, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {load}")
    scores = [
        run(
            m,
            TARGETS[m],
            max_children=options.max_children,
            quiet=options.quiet,
            sample=options.sample,
            only=options.only,
        )
        for m in options.modules or list(TARGETS)
    ]
    print("\n".join(s.line() for s in scores))
    return 1 if any(s.score < options.minimum for s in scores) else 0


if __name__ == "__main__":
    raise SystemExit(main())
