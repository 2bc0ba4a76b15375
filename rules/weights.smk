# Pretrained weights: fetched into resources/ on the login node; compute nodes only read them.


rule download_weights:
    """Fetch the missing weights the config names, check present ones, record their SHA-256."""
    output:
        **weight_outputs(),
        manifest=update(MANIFEST),
    log:
        f"{LOGS}/download_weights/download_weights.log",
    localrule: True
    conda:
        SOFTWARE
    params:
        weights=[weight.path for weight in configured_weights(config)],
    script:
        "../scripts/download_weights.py"
