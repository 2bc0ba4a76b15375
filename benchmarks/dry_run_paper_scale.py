"""Dry run of the paper config against the real cohort sizes: 1,350 BraTS 2024 GLI and 335 BraTS 2019 cases.

    .venv/bin/python benchmarks/dry_run_paper_scale.py [--gli 1350] [--legacy 335] [--repeats 3]

Writes the two folder layouts with empty files (a dry run reads no volume: discovery is a job), then
times `snakemake -n --configfile config/config.yaml` on them and the demo's dry run, each the best of
--repeats, and prints both times, their ratio and the job count. Target: the paper dry run under 10 s.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sambrats.brats import GLI, LEGACY, SEG

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
TARGET_S = 10.0


def write_layout(root: Path, layout, n_cases: int) -> Path:
    """Empty files named as in the real release (BraTS 2019: HGG/ and LGG/ in the study's 259/76 ratio)."""
    for index in range(n_cases):
        if layout is GLI:
            case_dir = root / f"BraTS-GLI-{index:05d}-000"
        else:
            grade = "HGG" if index < round(n_cases * 259 / 335) else "LGG"
            case_dir = root / grade / f"BraTS19_SYN_{index:04d}_1"
        case_dir.mkdir(parents=True)
        for modality in (*layout.modalities, SEG):
            (case_dir / f"{case_dir.name}{layout.separator}{modality}.nii.gz").touch()
    return root


def timed_dry_run(workdir: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
                             "-n", *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gli", type=int, default=1350)
    parser.add_argument("--legacy", type=int, default=335)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        roots = {"brats2024": write_layout(work / "gli", GLI, args.gli),
                 "brats2019": write_layout(work / "legacy", LEGACY, args.legacy)}
        override = work / "roots.yaml"
        override.write_text(yaml.safe_dump({"data": {name: {"root": str(root)} for name, root in roots.items()}}))
        paper_args = ("--configfile", str(REPO / "config/config.yaml"), str(override))
        paper = [timed_dry_run(work, *paper_args) for _ in range(args.repeats)]
        demo = [timed_dry_run(work, "--configfile", str(REPO / "config/demo.yaml")) for _ in range(args.repeats)]
    paper_s, demo_s = min(t for t, _ in paper), min(t for t, _ in demo)
    jobs = re.search(r"^total\s+(\d+)$", paper[0][1], flags=re.MULTILINE).group(1)
    print(f"paper-scale dry run ({args.gli} GLI + {args.legacy} BraTS 2019 cases, {jobs} jobs): {paper_s:.2f} s "
          f"(target < {TARGET_S:.0f} s: {'met' if paper_s < TARGET_S else 'MISSED'})")
    print(f"demo dry run: {demo_s:.2f} s; ratio paper/demo: {paper_s / demo_s:.2f}x")


if __name__ == "__main__":
    main()
