# YOLO detector (ultralytics): dataset export, training, detection metrics, boxes for SAM.

YOLO = f"{RESULTS}/yolo/{{region}}/{{dataset}}/{{slice_set}}"  # the detector of a region, dataset and slice set
YOLO_RUN = f"{YOLO}/seed{{seed}}"  # one training replicate
YOLO_CONFIG_DIR = f"{RESULTS}/yolo/ultralytics_config"


rule yolo_dataset:
    """Slice PNGs and one YOLO label per slice in the ultralytics layout (an empty one for a
    background slice), with data.yaml."""
    input:
        slices=slices_dir("{dataset}", slice_set="{slice_set}"),
    output:
        directory(f"{YOLO}/dataset"),
    log:
        f"{LOGS}/yolo_dataset/{{region}}.{{dataset}}.{{slice_set}}.log",
    priority: PRIORITY_DATA
    conda:
        SOFTWARE
    script:
        "../scripts/yolo_dataset.py"


rule train_yolo:
    """Train the detector offline, seeded by the replicate; every ultralytics run file stays
    under the replicate's runs/."""
    input:
        unpack(get_yolo_model_input),
        dataset=rules.yolo_dataset.output[0],
    output:
        weights=protected(f"{YOLO_RUN}/weights/best.pt"),
        results=f"{YOLO_RUN}/results.csv",
    log:
        f"{LOGS}/train_yolo/{{region}}.{{dataset}}.{{slice_set}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_yolo/{{region}}.{{dataset}}.{{slice_set}}.seed{{seed}}.tsv"
    priority: PRIORITY_TRAINING
    conda:
        SOFTWARE
    threads: job_threads(4)
    resources:
        mem_mb=memory_per_attempt(16000),
        runtime=720,
        gpu=1,
    params:
        model=config["yolo"]["model"],
        run_dir=lambda wildcards: expand(f"{YOLO_RUN}/runs/train", **wildcards)[0],
        settings=get_yolo_settings,
        device=config["device"],
        config_dir=YOLO_CONFIG_DIR,
    script:
        "../scripts/train_yolo.py"


rule evaluate_yolo:
    """mAP50, mAP50-95, precision and recall on the val and test images of the detector's own slice
    set (with its background images) with ultralytics' validator."""
    input:
        weights=rules.train_yolo.output.weights,
        dataset=rules.yolo_dataset.output[0],
    output:
        f"{YOLO_RUN}/metrics.tsv",
    log:
        f"{LOGS}/evaluate_yolo/{{region}}.{{dataset}}.{{slice_set}}.seed{{seed}}.log",
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(8000),
        runtime=60,
        gpu=1,
    params:
        imgsz=config["yolo"]["imgsz"],
        run_dir=lambda wildcards: expand(f"{YOLO_RUN}/runs", **wildcards)[0],
        device=config["device"],
        config_dir=YOLO_CONFIG_DIR,
    script:
        "../scripts/evaluate_yolo.py"


rule predict_yolo_boxes:
    """The most confident box per test key slice (no-detection policy from config), and every box."""
    input:
        weights=rules.train_yolo.output.weights,
        slices=slices_dir("{dataset}"),
    output:
        chosen=f"{YOLO_RUN}/boxes.tsv",
        every=f"{YOLO_RUN}/boxes_all.tsv",
    log:
        f"{LOGS}/predict_yolo_boxes/{{region}}.{{dataset}}.{{slice_set}}.seed{{seed}}.log",
    wildcard_constraints:
        slice_set="key_slice",
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(8000),
        runtime=60,
        gpu=1,
    params:
        imgsz=config["yolo"]["imgsz"],
        conf=config["yolo"]["conf"],
        policy=config["yolo"]["no_detection"],
        device=config["device"],
        config_dir=YOLO_CONFIG_DIR,
    script:
        "../scripts/predict_yolo_boxes.py"


rule detect_volumes:
    """The detector on every axial slice of every test volume: each slice's most confident box
    above `conf` (the automatic prompts of the volume protocol; no ground truth read).
    """
    input:
        weights=rules.train_yolo.output.weights,
        cases=rules.discover_cases.output.cases,
        splits=rules.split_cases.output[0],
    output:
        f"{YOLO_RUN}/volume_detections.tsv",
    log:
        f"{LOGS}/detect_volumes/{{region}}.{{dataset}}.{{slice_set}}.seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/detect_volumes/{{region}}.{{dataset}}.{{slice_set}}.seed{{seed}}.tsv"
    conda:
        SOFTWARE
    threads: job_threads(2)
    resources:
        mem_mb=memory_per_attempt(8000),
        runtime=120,
        gpu=1,
    params:
        layout=get_dataset_layout,
        contrasts=get_region_contrasts,
        percentiles=config["slices"]["clip_percentiles"],
        imgsz=config["yolo"]["imgsz"],
        conf=config["yolo"]["conf"],
        device=config["device"],
        config_dir=YOLO_CONFIG_DIR,
    script:
        "../scripts/detect_volumes.py"
