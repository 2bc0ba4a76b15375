# LoRA-SAM: the demo stand-in base model, LoRA training, inference for every prompt mode.

SAM = f"{RESULTS}/sam"
SAM_RUN = f"{SAM}/{{region}}/{{dataset}}/{{slice_set}}/seed{{seed}}"  # a replicate trained on a slice set


rule sam_standin:
    """Stand-in for the hub SAM: a tiny SAM trained in full on a separate synthetic cohort."""
    output:
        model=protected(directory(f"{SAM}/base/{{preset}}")),
        history=f"{SAM}/base/{{preset}}.history.tsv",
        curve=f"{SAM}/base/{{preset}}.training_curve.png",
    log:
        f"{LOGS}/sam_standin/{{preset}}.log",
    benchmark:
        f"{BENCHMARKS}/sam_standin/{{preset}}.tsv"
    wildcard_constraints:
        preset="|".join(SAM_STANDINS),
    priority: PRIORITY_TRAINING
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(6000),
        runtime=60,
        gpu=1,
    params:
        cohort=sam_standin_cohort(),
        settings=standin_settings(),
        device=config["device"],
    script:
        "../scripts/sam_standin.py"


rule train_lora_sam:
    """Fine-tune SAM with LoRA on the train split of a slice set's tumour slices, seeded by the
    replicate; the best adapter by validation Dice."""
    input:
        unpack(get_sam_base_input),
        slices=slices_dir("{dataset}", slice_set="{slice_set}"),
    output:
        adapter=protected(directory(f"{SAM_RUN}/lora/adapter")),
        history=f"{SAM_RUN}/lora/history.tsv",
        curve=f"{SAM_RUN}/lora/training_curve.png",
    log:
        f"{LOGS}/train_lora_sam/{{region}}.{{dataset}}.{{slice_set}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_lora_sam/{{region}}.{{dataset}}.{{slice_set}}.seed{{seed}}.tsv"
    priority: PRIORITY_TRAINING
    conda:
        SOFTWARE
    threads: job_threads(4)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=720,
        gpu=1,
    params:
        base_model=sam_base_model(),
        lora=config["sam"]["lora"],
        settings=get_lora_settings,
        device=config["device"],
    script:
        "../scripts/train_lora_sam.py"


rule predict_sam:
    """Every prompt mode (boxes, points, the click protocol) from one image embedding per test key
    slice, plus zero-shot SAM (GT box)."""
    input:
        unpack(get_sam_base_input),
        unpack(get_sam_prompt_inputs),
        slices=slices_dir("{dataset}"),
        adapter=rules.train_lora_sam.output.adapter,
    output:
        predictions=directory(f"{SAM_RUN}/predictions"),
        metrics=f"{SAM_RUN}/metrics.tsv",
        clicks=f"{SAM_RUN}/clicks.tsv",
    log:
        f"{LOGS}/predict_sam/{{region}}.{{dataset}}.{{slice_set}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/predict_sam/{{region}}.{{dataset}}.{{slice_set}}.seed{{seed}}.tsv"
    wildcard_constraints:
        slice_set="key_slice",
    conda:
        SOFTWARE
    threads: job_threads(4)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=240,
        gpu=1,
    params:
        base_model=sam_base_model(),
        jitters=config["sam"]["eval"]["jitter_px"],
        points=config["prompts"]["points"],
        clicks=config["prompts"]["clicks"],
        seed=config["seed"],
        nsd_tolerance_mm=config["metrics"]["nsd_tolerance_mm"],
        device=config["device"],
    script:
        "../scripts/predict_sam.py"


# LoRA-SAM's run of one volume prompt of one replicate
SAM_VOLUMES = expand(VOLUME_RUN, family="sam", allow_missing=True)[0]


rule predict_sam_volumes:
    """LoRA-SAM (trained on the slice set `slices.volume_training`) on every axial slice of every test
    volume, each slice prompted by its own box (the ground truth's, or YOLO's automatic one); NIfTI
    masks over the input's header."""
    input:
        unpack(get_sam_base_input),
        unpack(get_volume_prompt_inputs),
        adapter=volume_model(rules.train_lora_sam.output.adapter),
        cases=rules.discover_cases.output.cases,
        splits=rules.split_cases.output[0],
    output:
        masks=directory(f"{SAM_VOLUMES}/masks"),
        prompts=f"{SAM_VOLUMES}/prompts.tsv",
    log:
        f"{LOGS}/predict_sam_volumes/{{region}}.{{dataset}}.{{prompt}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/predict_sam_volumes/{{region}}.{{dataset}}.{{prompt}}.seed{{seed}}.tsv"
    wildcard_constraints:
        prompt="|".join(VOLUME_PROMPTS),
    conda:
        SOFTWARE
    threads: job_threads(4)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=480,
        gpu=1,
    params:
        base_model=sam_base_model(),
        layout=get_dataset_layout,
        contrasts=get_region_contrasts,
        percentiles=config["slices"]["clip_percentiles"],
        device=config["device"],
    script:
        "../scripts/predict_sam_volumes.py"
