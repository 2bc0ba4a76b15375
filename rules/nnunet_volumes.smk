# nnU-Net v2 in the volume protocol: 2d and 3d_fullres trained on every training volume of a dataset
# (region-absent ones with empty labels), predicting every test volume; our split as fold 0.
# The same library functions and scripts as the study's 2D baseline on the slice dataset.


rule nnunet_volumes_raw:
    """Every case's volumes as an nnU-Net raw dataset (images linked, region labels, empty where absent)."""
    input:
        cases=rules.discover_cases.output.cases,
        splits=rules.split_cases.output[0],
    output:
        directory(nnunet.raw_folder(NNUNET_VOLUMES, NNUNET_VOLUMES_DATASET)),
    log:
        f"{LOGS}/nnunet_volumes_raw/{{region}}.{{dataset}}.log",
    conda:
        SOFTWARE
    params:
        layout=get_dataset_layout,
        channels=config["nnunet"]["volumes"]["channels"],
    script:
        "../scripts/nnunet_volumes_raw.py"


rule nnunet_volumes_preprocess:
    """nnU-Net fingerprint, plans and preprocessing of every configured configuration; splits_final.json
    fold 0 = our split."""
    input:
        raw=rules.nnunet_volumes_raw.output[0],
        splits=rules.split_cases.output[0],
    output:
        directory(nnunet.preprocessed_folder(NNUNET_VOLUMES, NNUNET_VOLUMES_DATASET)),
    log:
        f"{LOGS}/nnunet_volumes_preprocess/{{region}}.{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/nnunet_volumes_preprocess/{{region}}.{{dataset}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=240,
    params:
        root=get_nnunet_volumes_root,
        dataset_id=config["nnunet"]["volumes"]["dataset_id"],
        configurations=config["nnunet"]["configurations"],
        verify_integrity=config["nnunet"]["verify_dataset_integrity"],
        base_features=config["nnunet"]["volumes"]["base_features"],
        target_spacing_mm=config["nnunet"]["volumes"]["target_spacing_mm"],
        batch_size_2d=config["nnunet"]["volumes"]["batch_size_2d"],
        split_table=lambda wildcards, input: input.splits,
    script:
        "../scripts/nnunet_preprocess.py"


rule train_nnunet_volumes:
    """nnU-Net's trainer, one configuration on fold 0 of the volumes; a rerun continues from its
    latest checkpoint."""
    input:
        rules.nnunet_volumes_preprocess.output[0],
    output:
        checkpoint=protected(
            nnunet.checkpoint_path(
                NNUNET_VOLUMES, NNUNET_VOLUMES_DATASET, "{seed}", "{configuration}"
            )
        ),
        history=f"{NNUNET_VOLUMES_RUN}/training_history.tsv",
    log:
        f"{LOGS}/train_nnunet_volumes/{{region}}.{{dataset}}.{{configuration}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_nnunet_volumes/{{region}}.{{dataset}}.{{configuration}}.seed{{seed}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(4)
    resources:
        mem_mb=memory_per_attempt(32000),
        runtime=2880,
        gpu=1,
    params:
        root=get_nnunet_volumes_root,
        dataset=NNUNET_VOLUMES_DATASET,
        dataset_id=config["nnunet"]["volumes"]["dataset_id"],
        epochs=get_volume_epochs,
        iterations=config["nnunet"]["volumes"]["iterations_per_epoch"],
        val_iterations=config["nnunet"]["volumes"]["val_iterations_per_epoch"],
        device=config["device"],
        seed=get_replicate_seed,
        augmentation_workers=config["nnunet"]["augmentation_workers"],
        configuration=lambda wildcards: wildcards.configuration,
    script:
        "../scripts/train_nnunet.py"


rule predict_nnunet_volumes:
    """nnU-Net's predictor on the test volumes; NIfTI masks over the input's header, 3D metrics."""
    input:
        raw=rules.nnunet_volumes_raw.output[0],
        checkpoint=rules.train_nnunet_volumes.output.checkpoint,
        cases=rules.discover_cases.output.cases,
    output:
        predictions=directory(f"{NNUNET_VOLUMES_RUN}/predictions"),
        metrics=f"{NNUNET_VOLUMES_RUN}/metrics.tsv",
    log:
        f"{LOGS}/predict_nnunet_volumes/{{region}}.{{dataset}}.{{configuration}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/predict_nnunet_volumes/{{region}}.{{dataset}}.{{configuration}}.seed{{seed}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=240,
        gpu=1,
    params:
        root=get_nnunet_volumes_root,
        dataset_id=config["nnunet"]["volumes"]["dataset_id"],
        layout=get_dataset_layout,
        device=config["device"],
        nsd_tolerance_mm=config["metrics"]["nsd_tolerance_mm"],
        mirroring=config["nnunet"]["volumes"]["mirroring"],
        seed=get_replicate_seed,
    script:
        "../scripts/predict_nnunet_volumes.py"
