# Scoring masks: our per-case metrics of masks written by a rule that does not score them, and
# BraTS's official lesion-wise metrics (brats-evaluation, AGPL-3.0) of every 3D run, in an
# environment of its own: its pins (pandas<3, numpy<2.3) are not the workflow's.


rule score_volumes:
    """Per-case 3D metrics of a prompted method's masks of every test volume (LoRA-SAM on every
    slice, MedSAM-2 from the detector) against the ground truth, with the slice-level detection of
    per-slice prompts (which slices got a box)."""
    input:
        masks=f"{VOLUME_RUN}/masks",
        prompts=f"{VOLUME_RUN}/prompts.tsv",
        cases=rules.discover_cases.output.cases,
        splits=rules.split_cases.output[0],
    output:
        f"{VOLUME_RUN}/metrics.tsv",
    log:
        f"{LOGS}/score_volumes/{{family}}.{{region}}.{{dataset}}.{{prompt}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/score_volumes/{{family}}.{{region}}.{{dataset}}.{{prompt}}.seed{{seed}}.tsv"
    wildcard_constraints:
        family="|".join(VOLUME_FAMILIES),
        prompt="|".join([*VOLUME_PROMPTS, MEDSAM2_AUTOMATIC]),
    conda:
        SOFTWARE
    threads: 1
    resources:
        mem_mb=memory_per_attempt(4000),
        runtime=60,
    params:
        layout=get_dataset_layout,
        method=lambda wildcards: VOLUME_FAMILIES[wildcards.family],
        per_slice=lambda wildcards: wildcards.prompt in VOLUME_PROMPTS,
        nsd_tolerance_mm=config["metrics"]["nsd_tolerance_mm"],
    script:
        "../scripts/score_volumes.py"


# {folder under results/: (dataset, region)} of every 3D run
VOLUME_RUNS = volume_runs()


rule brats_evaluation_env:
    """brats-evaluation and panoptica, pinned (envs/brats-evaluation.txt), in their own virtual environment."""
    input:
        f"{workflow.basedir}/envs/brats-evaluation.txt",
    output:
        directory(config["brats_evaluation"]["environment"]),
    log:
        f"{LOGS}/brats_evaluation_env/brats_evaluation_env.log",
    localrule: True  # pip reads the package registry, which compute nodes may not reach
    conda:
        SOFTWARE
    params:
        python=config["brats_evaluation"]["python"],
    script:
        "../scripts/brats_evaluation_env.py"


rule lesionwise_metrics:
    """The official package's lesion-wise and global metrics of one 3D run's test masks."""
    input:
        unpack(get_lesionwise_inputs),
    output:
        f"{RESULTS}/{{run}}/lesionwise.tsv",
    log:
        f"{LOGS}/lesionwise_metrics/{{run}}.log",
    benchmark:
        f"{BENCHMARKS}/lesionwise_metrics/{{run}}.tsv"
    wildcard_constraints:
        run="|".join(map(re.escape, VOLUME_RUNS)),
    conda:
        SOFTWARE
    threads: 1
    resources:
        mem_mb=memory_per_attempt(4000),
        runtime=120,
    params:
        layout=lambda wildcards: dataset_config(VOLUME_RUNS[wildcards.run][0])["layout"],
    script:
        "../scripts/lesionwise_metrics.py"
