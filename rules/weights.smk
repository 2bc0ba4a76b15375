# Pretrained weights: fetched into resources/ on the login node; compute nodes only read them.

from sambrats.weights import MANIFEST, configured_weights


def weight_outputs():
    """The config's downloadable weights as outputs, kept in place when the rule runs to record checksums."""
    return {
        Path(weight.path).stem.replace("-", "_"): update(directory(weight.path) if weight.folder else weight.path)
        for weight in configured_weights(config)
    }


def weight_checksums(wildcards):
    """The checksum manifest, for provenance, when the config uses downloadable weights."""
    return {"weights": MANIFEST} if configured_weights(config) else {}


rule download_weights:
    """Fetch the missing weights the config names, check present ones, record their SHA-256."""
    output:
        manifest=update(MANIFEST),
        **weight_outputs(),
    params:
        weights=[weight.path for weight in configured_weights(config)],
    log:
        f"{LOGS}/download_weights/download_weights.log",
    localrule: True
    script:
        "../scripts/download_weights.py"
