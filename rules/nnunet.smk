# nnU-Net v2 2D baseline: raw dataset, plan + preprocess, training, prediction.


rule nnunet_raw:
    """The slice dataset as an nnU-Net raw dataset (imagesTr/labelsTr: train+val, imagesTs: test)."""
    input:
        slices=slices_dir(config["dataset_2d"]),
        cases=expand(rules.discover_cases.output.cases, dataset=config["dataset_2d"])[0],
    output:
        directory(nnunet.raw_folder(NNUNET, NNUNET_DATASET)),
    log:
        f"{LOGS}/nnunet_raw/{{region}}.log",
    conda:
        SOFTWARE
    params:
        layout=dataset_config(config["dataset_2d"])["layout"],
        channels=get_region_contrasts,
        percentiles=config["slices"]["clip_percentiles"],
    script:
        "../scripts/nnunet_raw.py"


rule nnunet_preprocess:
    """nnU-Net fingerprint, 2D plan and preprocessing; splits_final.json fold 0 = our split."""
    input:
        raw=rules.nnunet_raw.output[0],
        slices=slices_dir(config["dataset_2d"]),
    output:
        directory(nnunet.preprocessed_folder(NNUNET, NNUNET_DATASET)),
    log:
        f"{LOGS}/nnunet_preprocess/{{region}}.log",
    benchmark:
        f"{BENCHMARKS}/nnunet_preprocess/{{region}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(8000),
        runtime=120,
    params:
        root=get_nnunet_root,
        dataset_id=config["nnunet"]["dataset_id"],
        configurations=[nnunet.CONFIGURATION],
        verify_integrity=config["nnunet"]["verify_dataset_integrity"],
        base_features=config["nnunet"]["base_features"],
        target_spacing_mm=None,  # the slices' own 1 mm
        batch_size_2d=None,  # nnU-Net's plan
        split_table=lambda wildcards, input: f"{input.slices}/index.tsv",
    script:
        "../scripts/nnunet_preprocess.py"


rule train_nnunet:
    """nnU-Net's own trainer on fold 0; a rerun continues from its latest checkpoint."""
    input:
        rules.nnunet_preprocess.output[0],
    output:
        checkpoint=protected(nnunet.checkpoint_path(NNUNET, NNUNET_DATASET, "{seed}")),
        history=f"{NNUNET}/seed{{seed}}/training_history.tsv",
    log:
        f"{LOGS}/train_nnunet/{{region}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_nnunet/{{region}}.seed{{seed}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(4)
    resources:
        mem_mb=memory_per_attempt(24000),
        runtime=1440,
        gpu=1,
    params:
        root=get_nnunet_root,
        dataset=NNUNET_DATASET,
        dataset_id=config["nnunet"]["dataset_id"],
        configuration=nnunet.CONFIGURATION,
        epochs=config["nnunet"]["epochs"],
        iterations=config["nnunet"]["iterations_per_epoch"],
        val_iterations=config["nnunet"]["val_iterations_per_epoch"],
        device=config["device"],
        seed=get_replicate_seed,
        augmentation_workers=config["nnunet"]["augmentation_workers"],
    script:
        "../scripts/train_nnunet.py"


rule predict_nnunet:
    """nnU-Net's predictor on the test slices; masks and the shared metrics table."""
    input:
        raw=rules.nnunet_raw.output[0],
        checkpoint=rules.train_nnunet.output.checkpoint,
        slices=slices_dir(config["dataset_2d"]),
    output:
        predictions=directory(f"{NNUNET}/seed{{seed}}/predictions"),
        metrics=f"{NNUNET}/seed{{seed}}/metrics.tsv",
    log:
        f"{LOGS}/predict_nnunet/{{region}}.seed{{seed}}.log",
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(8000),
        runtime=120,
        gpu=1,
    params:
        root=get_nnunet_root,
        dataset_id=config["nnunet"]["dataset_id"],
        dataset=config["dataset_2d"],
        device=config["device"],
        nsd_tolerance_mm=config["metrics"]["nsd_tolerance_mm"],
        seed=get_replicate_seed,
    script:
        "../scripts/predict_nnunet.py"
