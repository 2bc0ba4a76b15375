"""The demo's time against its budget (15 minutes on 2 cores), and the cost of the pinned numeric path.

    .venv/bin/python benchmarks/demo_budget.py [--fresh-clone [--commit REV]] [--native] [--short] [--cores 2]

Runs the embedded demo (`--short`: the test suite's short demo) in a fresh folder with
`numerics: portable`, as `make demo` does, and prints its time against the budget. `--native` runs
it a second time in another fresh folder with `numerics: native` and prints the ratio of the two
(the cost of the pin). `--fresh-clone` clones this commit first and times `make setup` there (the
venv of a fresh clone), then runs the demo with that venv; `--commit` clones that commit instead
(its own workflow, config and set-up: a baseline measured on the same machine, since the same jobs
take twice as long on one 2-core machine as on another). Where the time went: the benchmarked
seconds of the jobs per rule, and how long fewer jobs ran than there are cores (read off
Snakemake's log, to the second). The test suite's subprocess timeouts
only guard against hangs; this is where the budget is measured. (The test suite runs it with
`--target` on an early output, only to prove that it runs.)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 15 * 60
SHORT_DEMO = Path("tests") / "data" / "short-demo.yaml"  # the tests' short demo, in the measured checkout


def timed(command: list[str], cwd: Path, log: Path) -> float:
    """Seconds ``command`` took; its output goes to ``log``; a failure stops the benchmark."""
    start = time.perf_counter()
    with log.open("w") as out:
        result = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed (exit {result.returncode}), see {log}")
    return time.perf_counter() - start


# Snakemake's log: a timestamp line before each job's start ("rule x:" and its "jobid: n") and end.
TIMESTAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
JOB_START = re.compile(r"^(?:local)?rule (\w+):$")
JOB_ID = re.compile(r"^\s+jobid: (\d+)$")
JOB_END = re.compile(r"^Finished jobid: (\d+)")


def job_spans(log_text: str) -> list[tuple[int, int, str]]:
    """(start, end, rule) of every finished job, in seconds since the first job started."""
    now, rule, started, spans = None, None, {}, []
    for line in log_text.splitlines():
        if match := TIMESTAMP.match(line):
            now = datetime.strptime(" ".join(match.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif match := JOB_START.match(line):
            rule = match.group(1)
        elif (match := JOB_ID.match(line)) and rule:
            started[match.group(1)], rule = (now, rule), None
        elif (match := JOB_END.match(line)) and match.group(1) in started:
            start, name = started.pop(match.group(1))
            spans.append((start, now, name))
    if not spans:
        return []
    first = min(start for start, _, _ in spans)
    return [(int((start - first).total_seconds()), int((end - first).total_seconds()), name)
            for start, end, name in spans]


def seconds_below(spans: list[tuple[int, int, str]], cores: int) -> int:
    """Seconds of the run in which fewer jobs ran than there are cores."""
    running = Counter()
    for start, end, _ in spans:
        for second in range(start, end):
            running[second] += 1
    total = max((end for _, end, _ in spans), default=0)
    return sum(1 for second in range(total) if running[second] < cores)


def job_seconds(workdir: Path) -> pd.Series:
    """Benchmarked seconds of the jobs per rule (results/benchmarks/{rule}/), largest first."""
    seconds = {rule.name: sum(pd.read_csv(tsv, sep="\t").s.sum() for tsv in rule.glob("*.tsv"))
               for rule in (workdir / "results" / "benchmarks").glob("*") if rule.is_dir()}
    return pd.Series(seconds, dtype=float).sort_values(ascending=False)


def where_the_time_went(workdir: Path, cores: int) -> str:
    """The jobs' benchmarked seconds (all, and the largest rules') and the seconds with a core idle."""
    per_rule = job_seconds(workdir)
    spans = job_spans((workdir / "snakemake.log").read_text())
    largest = ", ".join(f"{rule} {seconds:.0f}" for rule, seconds in per_rule.head(8).items())
    return (f"  {len(spans)} jobs, {per_rule.sum():.0f} benchmarked job-seconds ({largest}); fewer than {cores} "
            f"jobs running for {seconds_below(spans, cores)} of {max((end for _, end, _ in spans), default=0)} s")


def demo_seconds(repo: Path, python: Path, workdir: Path, overrides: dict, cores: int, targets: list[str]) -> float:
    override = workdir / "override.yaml"
    workdir.mkdir(parents=True)
    override.write_text(yaml.safe_dump(overrides))
    command = [str(python.parent / "snakemake"), "--snakefile", str(repo / "Snakefile"), "--directory",
               str(workdir), "--cores", str(cores), *targets, "--configfile", str(repo / "config/demo.yaml"),
               str(override)]
    return timed(command, workdir, workdir / "snakemake.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh-clone", action="store_true", help="clone this commit and time `make setup` first")
    parser.add_argument("--commit", help="with --fresh-clone: clone this commit instead (a baseline)")
    parser.add_argument("--native", action="store_true", help="also run with numerics: native (cost of the pin)")
    parser.add_argument("--short", action="store_true", help="the test suite's short demo instead of the demo")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--target", action="append", default=[], help="only this output (the test suite's quick run)")
    args = parser.parse_args()
    if args.commit and not args.fresh_clone:
        parser.error("--commit measures a fresh clone of that commit: give --fresh-clone too")
    scratch = Path(tempfile.mkdtemp(prefix="sambrats-budget-"))
    repo, python = REPO, Path(sys.executable)
    if args.fresh_clone:
        repo = scratch / "clone"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(repo)], check=True)
        if args.commit:
            subprocess.run(["git", "-C", str(repo), "checkout", "--quiet", args.commit], check=True)
        setup = timed(["make", "setup"], repo, scratch / "setup.log")
        python = repo / ".venv/bin/python"
        print(f"make setup of a fresh clone{f' of {args.commit}' if args.commit else ''}: {setup:.0f} s")
    base = yaml.safe_load((repo / SHORT_DEMO).read_text()) if args.short else {}
    portable = demo_seconds(repo, python, scratch / "portable", {**base, "numerics": "portable"}, args.cores,
                            args.target)
    name = ("short demo" if args.short else "demo") + (f" up to {', '.join(args.target)}" if args.target else "")
    print(f"{name}, numerics portable, --cores {args.cores}: {portable:.0f} s "
          f"({portable / BUDGET_S:.0%} of the {BUDGET_S // 60} min budget)")
    print(where_the_time_went(scratch / "portable", args.cores))
    if args.native:
        native = demo_seconds(repo, python, scratch / "native", {**base, "numerics": "native"}, args.cores,
                              args.target)
        print(f"{name}, numerics native: {native:.0f} s; portable / native = {portable / native:.3f}")
    print(f"folders and logs in {scratch}")


if __name__ == "__main__":
    main()
