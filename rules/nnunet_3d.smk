# nnU-Net v2 3d_fullres beside MedSAM-2: the volumes of each MedSAM-2 dataset, our split as fold 0.
# The same library functions and scripts as the 2D baseline, with configuration 3d_fullres.


rule nnunet_3d_raw:
    """Every case's volumes as an nnU-Net raw dataset (images linked, region labels, empty where absent)."""
    input:
        cases=rules.discover_cases.output.cases,
        splits=rules.split_cases.output[0],
    output:
        directory(nnunet.raw_folder(NNUNET_3D, NNUNET_3D_DATASET)),
    log:
        f"{LOGS}/nnunet_3d_raw/{{region}}.{{dataset}}.log",
    conda:
        SOFTWARE
    params:
        layout=get_dataset_layout,
        channels=config["nnunet"]["volumes"]["channels"],
    script:
        "../scripts/nnunet_3d_raw.py"


rule nnunet_3d_preprocess:
    """nnU-Net fingerprint, 3d_fullres plan and preprocessing; splits_final.json fold 0 = our split."""
    input:
        raw=rules.nnunet_3d_raw.output[0],
        splits=rules.split_cases.output[0],
    output:
        directory(nnunet.preprocessed_folder(NNUNET_3D, NNUNET_3D_DATASET)),
    log:
        f"{LOGS}/nnunet_3d_preprocess/{{region}}.{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/nnunet_3d_preprocess/{{region}}.{{dataset}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=240,
    params:
        root=get_nnunet_3d_root,
        dataset_id=config["nnunet"]["volumes"]["dataset_id"],
        configuration=nnunet.VOLUMES,
        verify_integrity=config["nnunet"]["verify_dataset_integrity"],
        base_features=config["nnunet"]["base_features"],
        split_table=lambda wildcards, input: input.splits,
    script:
        "../scripts/nnunet_preprocess.py"


rule train_nnunet_3d:
    """nnU-Net's trainer, 3d_fullres, on fold 0; a rerun continues from its latest checkpoint."""
    input:
        rules.nnunet_3d_preprocess.output[0],
    output:
        checkpoint=protected(
            nnunet.checkpoint_path(
                NNUNET_3D, NNUNET_3D_DATASET, "{seed}", nnunet.VOLUMES
            )
        ),
        history=f"{NNUNET_3D}/seed{{seed}}/training_history.tsv",
    log:
        f"{LOGS}/train_nnunet_3d/{{region}}.{{dataset}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_nnunet_3d/{{region}}.{{dataset}}.seed{{seed}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(4)
    resources:
        mem_mb=memory_per_attempt(32000),
        runtime=2880,
        gpu=1,
    params:
        root=get_nnunet_3d_root,
        dataset=NNUNET_3D_DATASET,
        dataset_id=config["nnunet"]["volumes"]["dataset_id"],
        configuration=nnunet.VOLUMES,
        epochs=config["nnunet"]["volumes"]["epochs"],
        iterations=config["nnunet"]["volumes"]["iterations_per_epoch"],
        val_iterations=config["nnunet"]["volumes"]["val_iterations_per_epoch"],
        device=config["device"],
        seed=get_replicate_seed,
        augmentation_workers=config["nnunet"]["augmentation_workers"],
    script:
        "../scripts/train_nnunet.py"


rule predict_nnunet_3d:
    """nnU-Net's predictor on the test volumes; NIfTI masks over the input's header, 3D metrics."""
    input:
        raw=rules.nnunet_3d_raw.output[0],
        checkpoint=rules.train_nnunet_3d.output.checkpoint,
        cases=rules.discover_cases.output.cases,
    output:
        predictions=directory(f"{NNUNET_3D}/seed{{seed}}/predictions"),
        metrics=f"{NNUNET_3D}/seed{{seed}}/metrics.tsv",
    log:
        f"{LOGS}/predict_nnunet_3d/{{region}}.{{dataset}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/predict_nnunet_3d/{{region}}.{{dataset}}.seed{{seed}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=240,
        gpu=1,
    params:
        root=get_nnunet_3d_root,
        dataset_id=config["nnunet"]["volumes"]["dataset_id"],
        layout=get_dataset_layout,
        device=config["device"],
        nsd_tolerance_mm=config["metrics"]["nsd_tolerance_mm"],
        mirroring=config["nnunet"]["volumes"]["mirroring"],
        seed=get_replicate_seed,
    script:
        "../scripts/predict_nnunet_3d.py"
