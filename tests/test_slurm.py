"""The workflow on a real single-node SLURM cluster through `snakemake --profile slurm`.

One scenario, as a user lives it: the MedSAM-2 branch of the short demo (GPU rule medsam2_predict) is run
with `strict: true`, so discover_cases fails on the demo's broken cases (retried with more memory, then
reported); the rerun without it continues from what completed and its results equal the local run's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from sambrats.outputs import read_tsv
from sambrats.slices import load_sample

from conftest import REPO, SHORT_DEMO, SNAKEMAKE, job_rules, share_evaluation_environment
from slurm_cluster import GPU_MODEL, LocalSlurm, PackagesUnavailable

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

TARGET = "results/medsam2/et/brats2019/metrics.tsv"
SNAKEMAKE_TIMEOUT_S = 1800  # a guard against a hang (the run takes about 3 minutes here)
FAILING_LOG = "results/logs/discover_cases/brats2019.log"


@pytest.fixture(scope="module")
def cluster():
    state = Path(tempfile.mkdtemp(prefix="sambrats-slurm-"))
    state.chmod(0o755)  # munged runs as user munge and must reach its folder inside
    slurm = LocalSlurm(state)
    try:
        slurm.start()
    except PackagesUnavailable as err:
        slurm.stop()
        pytest.skip(f"no SLURM cluster on this machine: {err}")
    except BaseException:
        slurm.stop()
        raise
    yield slurm
    slurm.stop()
    shutil.rmtree(state, ignore_errors=True)


def snakemake_on_slurm(workdir, *args: str) -> subprocess.CompletedProcess:
    """`snakemake --profile slurm` from the repository root, stopped by SIGINT after the timeout.

    The test cluster has no slurmdbd, so job states come from squeue (sacct would wait forever).
    """
    command = ["timeout", "-s", "INT", "-k", "30", str(SNAKEMAKE_TIMEOUT_S), str(SNAKEMAKE),
               "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--profile", "slurm",
               "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
               "--verbose", TARGET, *args]
    result = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=SNAKEMAKE_TIMEOUT_S + 60)
    runs = sorted(workdir.glob("snakemake-*.out"))
    (workdir / f"snakemake-{len(runs)}.out").write_text(result.stdout)  # kept for a look after a failure
    assert result.returncode != 124, f"snakemake timed out under SLURM:\n{result.stdout[-5000:]}"
    return result


def sbatch_calls(output: str) -> dict[str, list[str]]:
    """The sbatch command lines Snakemake ran, per rule, without the inner snakemake command."""
    calls: dict[str, list[str]] = {}
    for line in output.splitlines():
        if line.startswith("sbatch call: "):
            rule = re.search(r"--comment rule_(\w+?)_wildcards", line).group(1)
            calls.setdefault(rule, []).append(line.split(" --wrap=")[0].removeprefix("sbatch call: "))
    return calls


@pytest.fixture(scope="module")
def slurm_runs(cluster, tmp_path_factory, short_demo_run, short_demo_config):
    workdir = tmp_path_factory.mktemp("slurm-run")
    share_evaluation_environment(workdir)
    (workdir / "strict.yaml").write_text("strict: true\n")
    failed = snakemake_on_slurm(workdir, *short_demo_config, str(workdir / "strict.yaml"))
    jobs_after_failure = cluster.jobs()
    failed_log = (workdir / FAILING_LOG).read_text()  # the rerun writes this log anew
    rerun = snakemake_on_slurm(workdir, *short_demo_config)
    return {"workdir": workdir, "failed": failed, "rerun": rerun, "jobs_after_failure": jobs_after_failure,
            "failed_log": failed_log,
            "jobs": cluster.jobs(), "local": short_demo_run}


def test_a_failing_rule_is_reported_retried_with_more_memory_and_its_logs_are_kept(slurm_runs):
    failed = slurm_runs["failed"]
    assert failed.returncode != 0
    assert "Error in rule discover_cases:" in failed.stdout
    # Snakemake names both logs: the rule's own and the SLURM job's, which is kept for a failed job.
    slurm_log = re.findall(rf"log: {FAILING_LOG}, (\S+/slurm_logs/rule_discover_cases/brats2019/\d+\.log)",
                           failed.stdout)[-1]
    assert "CaseRejected: strict:" in Path(slurm_log).read_text()
    # The rule's own log says why and names the case and the file.
    assert "CaseRejected: strict: 2 brats2019 case(s) rejected, first BraTS19_BROKEN_0000_1: missing seg: " \
        "no BraTS19_BROKEN_0000_1_seg.nii.gz" in slurm_runs["failed_log"]
    memory = [re.search(r"--mem (\d+)", call).group(1) for call in sbatch_calls(failed.stdout)["discover_cases"]]
    # retries: 2 in the profile; 2000 MB per thread (one: the demo's threads) times the attempt
    assert memory == ["2000", "4000", "6000"]
    states = {job["JobState"] for job in slurm_runs["jobs_after_failure"] if "discover_cases" in job["Comment"]}
    assert states == {"FAILED"}


def test_the_rerun_continues_from_what_completed(slurm_runs):
    rerun = slurm_runs["rerun"]
    assert rerun.returncode == 0, rerun.stdout[-5000:]
    assert {"synth_cohort", "medsam2_standin"} <= job_rules(slurm_runs["failed"].stdout)
    assert job_rules(rerun.stdout) == {"discover_cases", "split_cases", "build_slices", "medsam2_predict",
                                             "medsam2_collect"}


def test_jobs_ran_through_slurm_and_gpu_rules_got_the_gpu_partition_and_gres(slurm_runs, capsys):
    calls = sbatch_calls(slurm_runs["failed"].stdout + slurm_runs["rerun"].stdout)
    with capsys.disabled():
        print("\nsbatch lines of the SLURM test run:")
        for rule, lines in calls.items():
            print("\n".join(f"  [{rule}] {line}" for line in lines))
    gpu_rules = {"medsam2_standin", "medsam2_predict"}
    for rule, lines in calls.items():
        for line in lines:
            if rule in gpu_rules:
                assert f"--gpus={GPU_MODEL}:1" in line and "-p gpu " in line, line
            else:
                assert "--gpus" not in line and "-p standard " in line, line
    assert len(calls["medsam2_predict"]) == SHORT_DEMO["medsam2"]["n_batches"]  # one job per batch
    jobs = [job for job in slurm_runs["jobs"] if job["Comment"].startswith("rule_")]
    completed = {re.match(r"rule_(\w+?)_wildcards", job["Comment"]).group(1)
                 for job in jobs if job["JobState"] == "COMPLETED"}
    assert completed == set(calls)  # every rule that was submitted completed in the end
    for job in jobs:
        on_gpu = job["Comment"].startswith(tuple(f"rule_{rule}_" for rule in gpu_rules))
        assert (job["TresPerJob"] == f"gres:gpu:{GPU_MODEL}:1") == on_gpu, job
        assert job["Partition"] == ("gpu" if on_gpu else "standard"), job


def test_results_equal_those_of_the_local_run(slurm_runs):
    slurm, local = slurm_runs["workdir"], slurm_runs["local"]
    for table in ("cases/brats2019.tsv", "splits/brats2019.tsv", "slices/brats2019/et/key_slice/index.tsv"):
        ours = (slurm / "results" / table).read_text().replace(str(slurm), "<workdir>")
        assert ours == (local / "results" / table).read_text().replace(str(local), "<workdir>"), table
    index = read_tsv(local / "results/slices/brats2019/et/key_slice/index.tsv")
    for case_id in index.case_id:
        ours = load_sample(slurm / "results/slices/brats2019/et/key_slice", case_id)
        theirs = load_sample(local / "results/slices/brats2019/et/key_slice", case_id)
        assert np.array_equal(ours.image, theirs.image) and np.array_equal(ours.mask, theirs.mask)
    ours, theirs = read_tsv(slurm / TARGET), read_tsv(local / TARGET)
    assert list(ours.case_id) == list(theirs.case_id)
    np.testing.assert_allclose(ours.dice, theirs.dice, atol=1e-4)
    np.testing.assert_allclose(ours.iou, theirs.iou, atol=1e-4)
