# Demo cohort, case discovery and validation, patient-level splits, 2D slice datasets.


rule synth_cohort:
    """Write the synthetic demo cohort of one dataset in its real BraTS layout."""
    output:
        directory(synthetic_root("{dataset}")),
    log:
        f"{LOGS}/synth_cohort/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/synth_cohort/{{dataset}}.tsv"
    priority: PRIORITY_DATA
    conda:
        SOFTWARE
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        layout=get_dataset_layout,
        n_cases=config["demo"]["n_cases"],
        shape=config["demo"]["shape"],
        seed=config["demo"]["seed"],
        broken=config["demo"]["broken"],
        lesions=config["demo"]["lesions"],
    script:
        "../scripts/synth_cohort.py"


rule discover_cases:
    """Find and validate every case of a raw BraTS folder; rejected cases get a reason."""
    input:
        unpack(get_raw_inputs),
    output:
        cases=f"{RESULTS}/cases/{{dataset}}.tsv",
        rejected=f"{RESULTS}/cases/{{dataset}}.rejected.tsv",
    log:
        f"{LOGS}/discover_cases/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/discover_cases/{{dataset}}.tsv"
    priority: PRIORITY_DATA
    conda:
        SOFTWARE
    threads: config["threads"]
    resources:
        mem_mb=memory_per_attempt(2000, per_thread=True),
        runtime=120,
    params:
        root=get_raw_root,
        layout=get_dataset_layout,
        strict=config["strict"],
    script:
        "../scripts/discover_cases.py"


rule split_cases:
    """Seeded patient-level train/val/test split, stratified by tumour size."""
    input:
        cases=rules.discover_cases.output.cases,
    output:
        f"{RESULTS}/splits/{{dataset}}.tsv",
    log:
        f"{LOGS}/split_cases/{{dataset}}.log",
    priority: PRIORITY_DATA
    conda:
        SOFTWARE
    params:
        ratios=config["split"],
        seed=config["seed"],
    script:
        "../scripts/split_cases.py"


rule build_slices:
    """A slice set of a region: every case's largest-area axial slice (key_slice), or slices sampled
    from its whole volume (volume_slices): npz + png, index.tsv with boxes and split."""
    input:
        cases=rules.discover_cases.output.cases,
        splits=rules.split_cases.output[0],
    output:
        directory(slices_dir("{dataset}", slice_set="{slice_set}")),
    log:
        f"{LOGS}/build_slices/{{dataset}}.{{region}}.{{slice_set}}.log",
    benchmark:
        f"{BENCHMARKS}/build_slices/{{dataset}}.{{region}}.{{slice_set}}.tsv"
    priority: PRIORITY_DATA
    conda:
        SOFTWARE
    threads: config["threads"]
    resources:
        mem_mb=memory_per_attempt(2000, per_thread=True),
        runtime=120,
    params:
        layout=get_dataset_layout,
        contrasts=get_region_contrasts,
        percentiles=config["slices"]["clip_percentiles"],
        sampling=get_slice_sampling,
    script:
        "../scripts/build_slices.py"
