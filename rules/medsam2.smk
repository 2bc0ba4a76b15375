# MedSAM-2 zero-shot volumetric segmentation (sam2 1.1.0), one job per batch of test cases.


rule medsam2_standin:
    """Stand-in for MedSAM2_latest.pt: sam2.1_hiera_t trained briefly on clips of a separate synthetic cohort."""
    output:
        checkpoint=protected(f"{MEDSAM2}/standin/{{preset}}.pt"),
        history=f"{MEDSAM2}/standin/{{preset}}.history.tsv",
    log:
        f"{LOGS}/medsam2_standin/{{preset}}.log",
    benchmark:
        f"{BENCHMARKS}/medsam2_standin/{{preset}}.tsv"
    wildcard_constraints:
        preset="|".join(MEDSAM2_STANDINS),
    priority: PRIORITY_TRAINING
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(6000),
        runtime=60,
        gpu=1,
    params:
        image_size=config["medsam2"]["image_size"],
        training=config["medsam2"]["standin"],
        device=config["device"],
    script:
        "../scripts/medsam2_standin.py"


rule medsam2_predict:
    """Box on the key slice, propagation both ways, union; NIfTI masks, metrics, overlays."""
    input:
        checkpoint=medsam2_checkpoint(),
        cases=rules.discover_cases.output.cases,
        splits=rules.split_cases.output[0],
        slices=slices_dir("{dataset}"),
    output:
        directory(f"{MEDSAM2_REGION}/batches/{{dataset}}/{{batch}}"),
    log:
        f"{LOGS}/medsam2_predict/{{region}}.{{dataset}}.{{batch}}.log",
    benchmark:
        f"{BENCHMARKS}/medsam2_predict/{{region}}.{{dataset}}.{{batch}}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        SOFTWARE
    threads: job_threads(4)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=360,
        gpu=1,
    params:
        layout=get_dataset_layout,
        contrasts=get_region_contrasts,
        settings=medsam2_settings(),
        predictions_dir=get_medsam2_predictions_dir,
        n_batches=config["medsam2"]["n_batches"],
        device=config["device"],
    script:
        "../scripts/medsam2_predict.py"


rule medsam2_collect:
    """All batches of a dataset: predictions/{dataset}/ and the two metrics tables."""
    input:
        expand(
            f"{MEDSAM2}/{{{{region}}}}/batches/{{{{dataset}}}}/{{batch}}",
            batch=range(config["medsam2"]["n_batches"]),
        ),
    output:
        predictions=report(
            directory(MEDSAM2_PREDICTIONS),
            patterns=["{case}.overlay.png"],
            caption="../report/medsam2_overlays.rst",
            category="MedSAM-2",
        ),
        metrics=f"{MEDSAM2_REGION}/{{dataset}}/metrics.tsv",
        metrics_2d=f"{MEDSAM2_REGION}/{{dataset}}/metrics_2d.tsv",
        skipped=f"{MEDSAM2_REGION}/{{dataset}}/skipped.tsv",
    log:
        f"{LOGS}/medsam2_collect/{{region}}.{{dataset}}.log",
    conda:
        SOFTWARE
    script:
        "../scripts/medsam2_collect.py"


MEDSAM2_VOLUMES = expand(
    VOLUME_RUN, family="medsam2", prompt=MEDSAM2_AUTOMATIC, allow_missing=True
)[0]


rule medsam2_automatic:
    """MedSAM-2 with no ground truth: the detector's most confident box over a test volume is the
    key slice's prompt, propagation both ways; a volume without a detection, an empty mask.
    """
    input:
        checkpoint=medsam2_checkpoint(),
        detections=volume_model(rules.detect_volumes.output[0]),
        cases=rules.discover_cases.output.cases,
        splits=rules.split_cases.output[0],
    output:
        masks=directory(f"{MEDSAM2_VOLUMES}/masks"),
        prompts=f"{MEDSAM2_VOLUMES}/prompts.tsv",
    log:
        f"{LOGS}/medsam2_automatic/{{region}}.{{dataset}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/medsam2_automatic/{{region}}.{{dataset}}.seed{{seed}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(4)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=360,
        gpu=1,
    params:
        layout=get_dataset_layout,
        contrasts=get_region_contrasts,
        settings=medsam2_settings(),
        device=config["device"],
    script:
        "../scripts/medsam2_automatic.py"


MEDSAM2_PROMPTS = f"{MEDSAM2_REGION}/prompts/{{dataset}}"


rule medsam2_prompts:
    """MedSAM-2 beyond one box on the test volumes with the region (`prompts.volume_cases` of them):
    point prompts on the key slice and the CVPR 2025 click protocol in 3D, each click re-propagated
    from the volume's one encoding."""
    input:
        checkpoint=medsam2_checkpoint(),
        cases=rules.discover_cases.output.cases,
        splits=rules.split_cases.output[0],
    output:
        masks=directory(f"{MEDSAM2_PROMPTS}/masks"),
        metrics=f"{MEDSAM2_PROMPTS}/metrics.tsv",
        clicks=f"{MEDSAM2_PROMPTS}/clicks.tsv",
    log:
        f"{LOGS}/medsam2_prompts/{{region}}.{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/medsam2_prompts/{{region}}.{{dataset}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(4)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=720,
        gpu=1,
    params:
        layout=get_dataset_layout,
        contrasts=get_region_contrasts,
        settings=medsam2_settings(),
        points=config["prompts"]["points"],
        clicks=config["prompts"]["clicks"],
        volume_cases=config["prompts"]["volume_cases"],
        device=config["device"],
    script:
        "../scripts/medsam2_prompts.py"
