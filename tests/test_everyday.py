"""The Snakemake commands users type every day, on this workflow (each is shown in the README)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, job_rules, run_snakemake
from slurm_cluster import install_debian_packages_or_skip

pytestmark = pytest.mark.workflow

RULE_FILES_TEXT = "".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
RULES = set(re.findall(r"^rule (\w+):", RULE_FILES_TEXT, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def graphviz():
    install_debian_packages_or_skip({"dot": "graphviz"}, "Graphviz")


@pytest.mark.parametrize("graph", ["--dag", "--rulegraph"])
def test_the_graphs_render_with_graphviz(tmp_path, graph, graphviz):
    result = subprocess.run([str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                             graph], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("digraph snakemake_dag")
    svg = subprocess.run(["dot", "-Tsvg"], input=result.stdout, capture_output=True, text=True, check=True).stdout
    for rule in RULES - {"download_weights"}:  # the demo names no weights to download
        assert f">{rule}<" in svg, rule


def test_the_readme_shows_the_current_rule_graph():
    svg = (REPO / "docs" / "rulegraph.svg").read_text()
    assert "docs/rulegraph.svg" in (REPO / "README.md").read_text()
    for rule in RULES - {"download_weights"}:
        assert f">{rule}<" in svg, f"{rule} is missing from docs/rulegraph.svg: run `make rulegraph`"


def test_lint_reports_nothing(tmp_path):
    result = run_snakemake(tmp_path, "--lint")
    assert result.returncode == 0, result.stdout
    assert "Congratulations, your workflow is in a good condition!" in result.stdout
    assert "Lints for" not in result.stdout


def test_snakefmt_check_passes():
    snakefmt = SNAKEMAKE.parent / "snakefmt"
    result = subprocess.run([str(snakefmt), "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_forcerun_of_predict_sam_reruns_it_and_only_what_depends_on_it(demo_run):
    result = run_snakemake(demo_run, "-n", "-R", "predict_sam")
    assert result.returncode == 0, result.stdout
    assert job_rules(result.stdout) == {"predict_sam", "compare_methods", "figures", "provenance", "all"}


def test_a_changed_config_value_reruns_the_rule_that_reads_it_and_nothing_unrelated(demo_run, tmp_path):
    (tmp_path / "conf.yaml").write_text("yolo: {conf: 0.5}\n")
    demo = str(REPO / "config" / "demo.yaml")
    result = run_snakemake(demo_run, "-n", "--configfile", demo, str(tmp_path / "conf.yaml"))
    assert result.returncode == 0, result.stdout
    assert "params have changed since last execution" in result.stdout
    # the study's boxes, and the volume protocol's detections with what they prompt (its automatic rows)
    assert job_rules(result.stdout) == {"predict_yolo_boxes", "predict_sam", "detect_volumes", "predict_sam_volumes",
                                        "medsam2_automatic", "score_volumes", "lesionwise_metrics", "viewer",
                                        "compare_methods", "figures", "provenance", "all"}
    volume_jobs = re.findall(r"^(?:local)?rule (?:predict_sam_volumes|score_volumes):\n(?:    .*\n)*?    wildcards: (.*)",
                             result.stdout, flags=re.MULTILINE)
    assert volume_jobs and all("prompt=yolo_" in wildcards for wildcards in volume_jobs), volume_jobs  # not the oracle's


def job_order(output: str) -> list[tuple[str, str]]:
    """('start'|'end', rule) in the order Snakemake reported them."""
    jobs, events, rule = {}, [], None
    for line in output.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = match.group(1)
        elif (match := re.match(r"^\s+jobid: (\d+)$", line)) and rule:
            jobs[match.group(1)] = rule
            events.append(("start", rule))
            rule = None
        elif match := re.match(r"^Finished jobid: (\d+)", line):
            events.append(("end", jobs[match.group(1)]))
    return events


def test_local_gpu_resource_keeps_gpu_jobs_apart_with_the_ilp_scheduler(demo_run, tmp_path):
    """Two GPU jobs that could run together: with --resources gpu=1 one waits for the other."""
    workdir = tmp_path / "demo"
    shutil.copytree(demo_run, workdir, symlinks=True)
    targets = ["results/yolo/wt/brats2024/key_slice/seed2024/metrics.tsv", "results/yolo/wt/brats2024/key_slice/seed2024/boxes.tsv"]
    rerun = ["--forcerun", "evaluate_yolo", "predict_yolo_boxes", "--cores", "4"]  # cores for both at once
    result = run_snakemake(workdir, *targets, *rerun, "--resources", "gpu=1")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "falling back to greedy scheduler" not in result.stdout  # PuLP's CBC solved every step
    first, second = {rule for _, rule in job_order(result.stdout)[:2]}, job_order(result.stdout)[2:]
    assert len(first) == 1 and [event for event, _ in second] == ["start", "end"], job_order(result.stdout)
    # Without the limit both start at once: the check above can fail.
    result = run_snakemake(workdir, *targets, *rerun)
    assert result.returncode == 0, result.stdout[-3000:]
    assert [event for event, _ in job_order(result.stdout)] == ["start", "start", "end", "end"]


def gpu_rules() -> set[str]:
    """Rules that declare gpu=1 in their resources."""
    blocks = re.split(r"^rule ", RULE_FILES_TEXT, flags=re.MULTILINE)[1:]
    return {block.split(":", 1)[0] for block in blocks if re.search(r"^\s+gpu=1,$", block, flags=re.MULTILINE)}


def test_every_gpu_rule_goes_to_the_gpu_partition_in_the_slurm_profile():
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert gpu_rules() == {"sam_standin", "train_lora_sam", "predict_sam", "train_yolo", "evaluate_yolo",
                           "predict_yolo_boxes", "train_nnunet", "predict_nnunet", "train_nnunet_volumes",
                           "predict_nnunet_volumes", "predict_sam_volumes", "detect_volumes",
                           "medsam2_standin", "medsam2_predict", "medsam2_automatic", "medsam2_prompts"}
    assert set(profile["set-resources"]) == gpu_rules()
    for rule, resources in profile["set-resources"].items():
        assert resources == {"slurm_partition": "gpu", "gpu_model": "a100"}, rule
    assert profile["executor"] == "slurm" and profile["retries"] >= 1
    assert {"slurm_partition", "runtime", "mem_mb"} <= set(profile["default-resources"])


@pytest.mark.parametrize("profile", ["slurm", "profiles/slurm"])
def test_the_slurm_profile_is_found_by_name_and_by_path_from_the_repository_root(tmp_path, profile):
    result = subprocess.run([str(SNAKEMAKE), "--snakefile", "Snakefile", "--directory", str(tmp_path),
                             "--profile", profile, "-n"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Using profile {profile} for setting default command line arguments." in result.stderr
    medsam2_job = result.stdout.split("rule medsam2_predict:")[1].split("\n\n")[0]
    assert "slurm_partition=gpu" in medsam2_job and "gpu=1" in medsam2_job and "gpu_model=a100" in medsam2_job
