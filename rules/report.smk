# The comparison: table, figures, provenance; `snakemake --report results/report.html` collects them.

from sambrats.report import FIGURES


rule compare_methods:
    """One table over every method's per-case metrics, with statistics and the study's numbers."""
    input:
        unpack(get_comparison_inputs),
    output:
        tsv=report(
            f"{RESULTS}/comparison.tsv",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        md=f"{RESULTS}/comparison.md",
        html=report(
            f"{RESULTS}/comparison.html",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
    log:
        f"{LOGS}/compare_methods/compare_methods.log",
    conda:
        SOFTWARE
    params:
        resamples=config["comparison"]["bootstrap_resamples"],
        seed=config["seed"],
        notes=standin_notes(),
        inputs=method_inputs(),
        training=method_training(),
        detection_runs=detection_runs(),
        detector=detector_name(config["yolo"]["model"]),
        datasets=config["datasets"],
        study_scope=[config["dataset_2d"], config["comparison"]["study_region"]],
    script:
        "../scripts/compare_methods.py"


rule figures:
    """One region's distributions, jitter robustness, size dependence, examples and training curves."""
    input:
        unpack(get_figure_inputs),
        slices=slices_dir(config["dataset_2d"]),
    output:
        **{
            name: report(
                f"{RESULTS}/figures/{{region}}/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
                subcategory="{region}",
            )
            for name in FIGURES
        },
        svg=expand(f"{RESULTS}/figures/{{{{region}}}}/{{name}}.svg", name=FIGURES),
    log:
        f"{LOGS}/figures/{{region}}.log",
    conda:
        SOFTWARE
    params:
        seed=config["seed"],
    script:
        "../scripts/figures.py"


rule viewer_library:
    """NiiVue's UMD bundle and licence from the npm registry, checked against the pinned SHA-512."""
    output:
        directory(f"resources/niivue-{config['viewer']['niivue']['version']}"),
    log:
        f"{LOGS}/viewer_library/viewer_library.log",
    localrule: True
    conda:
        SOFTWARE
    params:
        tarball=config["viewer"]["niivue"]["tarball"],
        integrity=config["viewer"]["niivue"]["integrity"],
    script:
        "../scripts/viewer_library.py"


rule viewer:
    """An offline NiiVue page of one dataset's and region's 3D masks: the baseline's best, median
    and worst test case, ground truth and every 3D method's mask as overlays."""
    input:
        unpack(get_viewer_inputs),
    output:
        report(
            directory(f"{RESULTS}/viewer/{{region}}/{{dataset}}"),
            htmlindex="index.html",
            caption="../report/viewer.rst",
            category="3D viewer",
            subcategory="{region}",
        ),
    log:
        f"{LOGS}/viewer/{{region}}.{{dataset}}.log",
    conda:
        SOFTWARE
    resources:
        mem_mb=memory_per_attempt(4000),
    params:
        layout=get_dataset_layout,
        modalities=get_viewer_modalities,
        baseline=viewer_baseline(),
        extra_cases=lambda wildcards: config["viewer"]["cases"].get(
            wildcards.dataset, []
        ),
    script:
        "../scripts/viewer.py"


rule provenance:
    """Package versions, git commit, config digest, seeds, hardware and times of the run."""
    input:
        rules.compare_methods.output.tsv,
        expand(rules.figures.output.svg, region=config["regions"]),
        unpack(get_weight_checksums),
    output:
        report(
            f"{RESULTS}/provenance.json",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    log:
        f"{LOGS}/provenance/provenance.log",
    localrule: True
    conda:
        SOFTWARE
    params:
        config=config,
        log_dir=LOGS,
    script:
        "../scripts/provenance.py"
