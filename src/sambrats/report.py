"""The comparison: one table over every method's per-case metrics, statistics and figures.

Every method writes the same per-case table (``metrics``); a row of the comparison is a
(method, prompt) pair of that table, so a method joins by appearing in it, not by new code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .brats import REGIONS
from .outputs import read_tsv, staged_file, write_tsv
from .plotting import pyplot, save_figure, training_panel
from .slices import SLICE_SETS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    label: str
    method: str
    prompt: str
    reference_dice: float | None = None
    reference_iou: float | None = None
    cases: str = "test"  # "test": the test split, shared by the dataset's rows; "present": its cases with the region;
    # "prompted": the cases its run prompted (of the shared ones); "all": every case
    baseline: str | None = "nnunet"  # the method its paired test is against (None: no test)
    protocol: str = "study"  # "study": one ground-truth-chosen slice per case; "volume": whole test volumes
    truth: str = "the slice"  # what of the ground truth the method used at inference
    seen: str | None = None  # its key in the inputs (what the method saw), if not its method


SLICE_BOX = "the slice and its box"


def prompt_rows(name: str, method: str, where: str, suffix: str = "", **row) -> tuple[Row, ...]:
    """A promptable method's rows beyond one box (``prompts``: sambrats.clicks.point_modes and the
    click protocol), prompted on ``where``."""
    points = f"{where}: {{}} (positive points of the region)"
    random = [(f"points{k}", f"{k} random point{'s' * (k > 1)}", f"{k} seeded random point{'s' * (k > 1)} in it")
              for k in (1, 3, 5)]
    return tuple(
        Row(f"{name} + {label}{suffix}", method, prompt, truth=truth, **row)
        for prompt, label, truth in [
            ("point_interior", "interior point", points.format("its most interior point")),
            *[(prompt, label, points.format(text)) for prompt, label, text in random],
            ("gt_box_point", "GT box + interior point", f"{where}: its box and most interior point"),
            ("gt_box_clicks", "GT box + correction clicks",
             f"{where}: its box, then clicks on the largest error (CVPR 2025 protocol)"),
        ]
    )


KEY_SLICE_BOX = "a box on the key slice"
BOX_PER_SLICE = "a box on every slice with the region"
# The study's rows, in the order of its table, with its test Dice / IoU; then the volume rows.
ROWS = (
    Row("nnU-Net", "nnunet", "", 0.8687, 0.8024, baseline=None),
    Row("SAM zero-shot + GT box", "sam_zeroshot", "gt_box", truth=SLICE_BOX),
    Row("LoRA-SAM + GT box", "lora_sam", "gt_box", 0.8985, 0.8279, truth=SLICE_BOX),
    Row("LoRA-SAM + GT box, 10 px jitter", "lora_sam", "gt_box_jitter10", 0.8962, 0.8256, truth=SLICE_BOX + " (jittered)"),
    Row("LoRA-SAM + GT box, 20 px jitter", "lora_sam", "gt_box_jitter20", 0.8879, 0.8157, truth=SLICE_BOX + " (jittered)"),
    Row("LoRA-SAM, no prompt", "lora_sam", "no_prompt", 0.8625, 0.7864),
    Row("{detector} + LoRA-SAM", "lora_sam", "yolo_box", 0.8817, 0.8092),  # the configured detector
    *prompt_rows("LoRA-SAM", "lora_sam", "the slice"),
    Row("MedSAM-2 zero-shot, key slice", "medsam2", "key_slice", cases="present", truth=KEY_SLICE_BOX + ", scored on the slice"),
    Row("nnU-Net 3D", "nnunet_3d", "3d", baseline=None, protocol="volume", truth="none"),
    Row("nnU-Net 2D", "nnunet_2d", "2d", baseline="nnunet_3d", protocol="volume", truth="none"),
    Row("LoRA-SAM + GT box on every slice", "lora_sam", "box_per_slice", baseline="nnunet_3d", protocol="volume",
        truth=BOX_PER_SLICE, seen="lora_sam_volume"),
    Row("LoRA-SAM + GT box on every slice, region present", "lora_sam", "box_per_slice", cases="present",
        baseline="nnunet_3d", protocol="volume", truth=BOX_PER_SLICE + " (cases with the region)",
        seen="lora_sam_volume"),
    Row("{detector} + LoRA-SAM on every slice", "lora_sam", "yolo_per_slice", baseline="nnunet_3d",
        protocol="volume", truth="none", seen="yolo_sam_volume"),
    Row("MedSAM-2 zero-shot, 3D", "medsam2", "3d", baseline="nnunet_3d", protocol="volume", truth=KEY_SLICE_BOX),
    # its box comes from the ground truth: without the region it predicts nothing, rightly
    Row("MedSAM-2 zero-shot, 3D, region present", "medsam2", "3d", cases="present", baseline="nnunet_3d",
        protocol="volume", truth=KEY_SLICE_BOX + " (cases with the region)"),
    Row("{detector} + MedSAM-2, 3D", "medsam2", "yolo_key_slice", baseline="nnunet_3d", protocol="volume",
        truth="none", seen="medsam2_automatic"),
    Row("MedSAM-2 zero-shot, 3D, all cases", "medsam2", "3d", cases="all", baseline=None, protocol="volume",
        truth=KEY_SLICE_BOX),
    *prompt_rows("MedSAM-2 zero-shot", "medsam2", "the key slice", suffix=", 3D", cases="prompted",
                 baseline="nnunet_3d", protocol="volume", seen="medsam2_prompts"),
)
BASELINES = {row.method: row for row in ROWS if row.method in ("nnunet", "nnunet_3d")}  # what rows test against
METRICS = {"dice": "Dice", "iou": "IoU", "hd95": "HD95 (mm)", "nsd": "NSD"}
# BraTS's official lesion-wise numbers of the 3D rows' test cases (sambrats.lesionwise): their mean over cases.
LESION_METRICS = ("lesions_tp", "lesions_fp", "lesions_fn", "lesion_dice", "lesion_hd95", "lesion_nsd",
                  "panoptic_quality", "global_dice", "global_hd95", "global_nsd")
# Slice-level detection of "the region is present" by a per-slice prompted 3D row (which slices got a box).
SLICE_COUNTS = ("slices_tp", "slices_fp", "slices_fn", "slices_tn")
# The click protocol's summary per case (sambrats.clicks.protocol_scores): area under Dice / NSD over the clicks.
CLICK_METRICS = ("dice_auc", "nsd_auc")
SLICE_DETECTION = ("slice_sensitivity", "slice_sensitivity_seed_sd", "slice_specificity", "slice_specificity_seed_sd",
                   "slices")
STATISTICS = ("mean", "sd", "median", "ci_low", "ci_high")
REPLICATE_STATISTICS = ("seed_sd", "by_seed")  # sd of the replicates' means; each replicate's mean
COLUMNS = (["row", "method", "prompt", "protocol", "dataset", "region", "input", "ground_truth_used", "trained_on",
             "n", "n_cases",
            "replicates"]
           + [f"{metric}_{statistic}" for metric in METRICS for statistic in STATISTICS + REPLICATE_STATISTICS]
           + [f"{metric}_mean" for metric in LESION_METRICS + CLICK_METRICS] + list(SLICE_DETECTION)
           + ["p_vs_nnunet", "p_vs_nnunet_holm", "fallbacks", "reference_dice", "reference_iou"])
TEST_NOTE = ("Training replicates: a trained method's row is over its training seeds (`replicates`): mean ± sd "
             "over the cases of the per-case values averaged over the replicates (the mean is the mean of the "
             "replicates' means), sd over seeds = sd of the replicates' means (each replicate's mean is in "
             "comparison.tsv); zero-shot rows have one run. p vs nnU-Net: two-sided paired Wilcoxon "
             "signed-rank test of the per-case Dice, averaged over replicates, against nnU-Net's on the same "
             "cases (study rows against the 2D baseline, volume rows against nnU-Net 3D), Holm-adjusted over the "
             "rows of each protocol, dataset and region (the raw p-values are in comparison.tsv); nnU-Net has none "
             "against itself. Protocol: study = one axial slice per case, the one with the largest ground-truth "
             "area, so every study row used the ground truth to choose it; volume = whole test volumes, every "
             "test case (those without the region included). Ground truth used: what of it a row's method saw at "
             "inference. The patient is the unit of the test and of the CI: n counts patients (cases in "
             "brackets where a patient has several timepoints); the test pairs the patients' Dice (a patient's "
             "timepoints averaged first), and the 95% CI is a seeded percentile bootstrap of the mean over cases "
             "that resamples patients, each with all its cases. Lesion-wise (3D rows, test cases): BraTS's "
             "official evaluation (brats-evaluation, config gli) matches the connected components of the mask "
             "to those of the ground truth; FP lesions = predicted lesions matching none, per case; PQ = "
             "panoptic quality, the matched lesions' mean Dice times the F1 of the lesion counts (both 1 "
             "where neither mask holds the region); every lesion-wise number is in comparison.tsv.")
KEYS = ["method", "prompt", "dataset", "region", "case_id"]  # one case of one row


def bootstrap_ci(values, resamples: int, seed: int, level: float = 0.95, clusters=None) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (seeded). With ``clusters`` (one label per
    value: its patient) whole clusters are drawn, each with all its values, since values within one
    are not independent; one value per cluster draws exactly what the plain bootstrap draws."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    codes = np.arange(len(values)) if clusters is None else pd.factorize(np.asarray(clusters))[0]
    sums, counts = np.bincount(codes, weights=values), np.bincount(codes)
    draws = rng.integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_wilcoxon(a, b) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired samples; 1.0 when they are identical."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if np.allclose(differences, 0):
        return 1.0
    return float(stats.wilcoxon(a, b, zero_method="zsplit").pvalue)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN, outside the family)."""
    p_values = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p_values, np.nan)
    tested = np.flatnonzero(~np.isnan(p_values))
    order = tested[np.argsort(p_values[tested], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def load_metrics(paths, lesionwise_paths=()) -> pd.DataFrame:
    """All per-case metrics tables in one frame (empty prompts stay empty strings; ``seed``, the
    training replicate, as text: empty for a method that is not trained), with the official
    lesion-wise numbers of ``lesionwise_paths`` beside the cases they scored (NaN elsewhere)."""
    table = with_seeds(text_prompts(pd.concat([read_tsv(path) for path in paths], ignore_index=True)))
    if "fallback" in table:
        table["fallback"] = table["fallback"].fillna("").astype(str)
    for metric in CLICK_METRICS:  # the click protocol's rows have them, the others an empty cell
        if metric in table:
            table[metric] = table[metric].replace("", np.nan).astype(float)
    if lesionwise_paths:
        lesionwise = with_seeds(text_prompts(pd.concat([read_tsv(path) for path in lesionwise_paths],
                                                       ignore_index=True)))
        table = table.merge(lesionwise[KEYS + ["seed", *LESION_METRICS]], on=KEYS + ["seed"], how="left",
                            validate="many_to_one")
    return table


def text_prompts(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(prompt=table["prompt"].fillna("").astype(str))


def with_seeds(metrics: pd.DataFrame) -> pd.DataFrame:
    """``seed`` as text, empty where a method has no training replicates (or no column at all)."""
    seeds = metrics["seed"] if "seed" in metrics else pd.Series(np.nan, index=metrics.index)
    return metrics.assign(seed=["" if pd.isna(seed) or seed == "" else str(int(float(seed))) for seed in seeds])


def replicate_means(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per case of each row: its metrics averaged over the training replicates (the other
    columns, such as the mask file, from the first replicate)."""
    columns = {column: ("mean" if column in METRICS else "first") for column in metrics.columns
               if column not in KEYS and column != "seed"}
    return metrics.groupby(KEYS, sort=False, as_index=False).agg(columns)


def replicate_summary(group: pd.DataFrame) -> dict:
    """Per metric: the sd of the replicates' means and each replicate's mean (``seed:value;...``)."""
    record = {}
    by_seed = group.groupby("seed")[list(METRICS)].mean()
    for metric in METRICS:
        values = by_seed[metric]
        record[f"{metric}_seed_sd"] = values.std(ddof=1) if len(values) > 1 else np.nan
        record[f"{metric}_by_seed"] = ";".join(f"{seed}:{value:.4f}" for seed, value in values.items() if seed)
    return record


def slice_detection(group: pd.DataFrame) -> dict:
    """Slice-level sensitivity and specificity of "the region is present" of a per-slice prompted
    row: over all its test slices per replicate, then the mean (and sd) over the replicates; NaN for
    a row without slice counts."""
    if not set(SLICE_COUNTS) <= set(group) or group[list(SLICE_COUNTS)].isna().any().any():
        return dict.fromkeys(SLICE_DETECTION, np.nan)
    sums = group.groupby("seed")[list(SLICE_COUNTS)].sum()
    rates = {"slice_sensitivity": sums.slices_tp / (sums.slices_tp + sums.slices_fn),
             "slice_specificity": sums.slices_tn / (sums.slices_tn + sums.slices_fp)}
    record = {"slices": int(sums.iloc[0].sum())}
    for name, values in rates.items():
        record[name] = values.mean()
        record[f"{name}_seed_sd"] = values.std(ddof=1) if len(values) > 1 else np.nan
    return record


def summary(values: pd.Series, resamples: int, seed: int, clusters=None) -> dict[str, float]:
    """Mean, sd, median over the cases and bootstrap CI of the mean (``clusters``: the patients)."""
    low, high = bootstrap_ci(values, resamples, seed, clusters=clusters)
    return {"mean": values.mean(), "sd": values.std(ddof=1) if len(values) > 1 else 0.0,
            "median": values.median(), "ci_low": low, "ci_high": high}


def row_metrics(metrics: pd.DataFrame, row: Row) -> pd.DataFrame:
    """The per-case rows of a study row: its method and prompt, on the test split unless ``row.cases``
    is "all" (a table without a split column holds test cases only), and only where the ground
    truth holds the region if it is "present"."""
    selected = metrics[(metrics.method == row.method) & (metrics.prompt == row.prompt)]
    if row.cases != "all" and "split" in selected:
        selected = selected[selected.split.isna() | selected.split.isin(["", "test"])]
    if row.cases == "present":
        selected = selected[selected.area_true > 0]
    return selected


def comparison_table(metrics: pd.DataFrame, resamples: int = 10_000, seed: int = 0, inputs=None,
                     detector: str = "YOLOv8m", patients=None, study_scope=None, training=None) -> pd.DataFrame:
    """One row per region, study row and dataset present in ``metrics``; within a dataset and region
    every test-split row of a protocol is computed on the cases all of them share (``n``); a region-present or
    all-cases row on its own cases (a region-present row tested against its baseline on them). ``inputs``: what each method saw, ``{method or Row.seen: {dataset: {region: text}}}``; ``detector``: the
    YOLO model that prompted the automatic pipeline; ``patients``: ``{(dataset, case_id): patient_id}``
    (a case not in it is its own patient), the unit of the paired test and the bootstrap;
    ``study_scope``: (dataset, region) the study reported, the only study-protocol rows that get its
    reference numbers (None: every study-protocol row that has them); ``training``: what each trained
    method's models trained on, ``{method or Row.seen: text}``."""
    inputs = inputs or {}
    training = training or {}
    patients = patients or {}
    metrics = with_seeds(metrics)
    groups = {}
    for row in ROWS:
        for (dataset, region), group in row_metrics(metrics, row).groupby(["dataset", "region"], sort=True):
            groups[(row, dataset, region)] = group.set_index("case_id").sort_index()
    common = {}  # the test cases every test-split row of a protocol, dataset and region has
    for (row, dataset, region), group in groups.items():
        if row.cases == "test":
            key = (row.protocol, dataset, region)
            common[key] = common.get(key, set(group.index)) & set(group.index)
    records = []
    for row, dataset, region in sorted(groups, key=lambda key: (REGIONS.index(key[2]), ROWS.index(key[0]), key[1])):
        group = groups[(row, dataset, region)]
        shared = common.get((row.protocol, dataset, region))
        if row.cases != "all" and shared is not None:  # a region-present row: those of the shared cases
            group = group.loc[group.index.isin(shared)]
        if group.empty:
            continue
        per_case = case_means(group)
        patient = pd.Series([patients.get((dataset, case), case) for case in per_case.index], index=per_case.index)
        baseline = groups.get((BASELINES[row.baseline], dataset, region)) if row.baseline else None
        tested = baseline is not None and row.cases != "all"
        fallbacks = int((group["fallback"] != "").sum()) if row.prompt == "yolo_box" and "fallback" in group else np.nan
        record = {"row": row.label.format(detector=detector), "method": row.method, "prompt": row.prompt,
                  "protocol": row.protocol, "dataset": dataset, "region": region,
                  "input": inputs.get(row.seen or row.method, {}).get(dataset, {}).get(region, ""),
                  "ground_truth_used": row.truth,
                  "trained_on": training.get(row.seen or row.method, ""),
                  "n": patient.nunique(),
                  "n_cases": len(per_case), "replicates": group.seed.nunique(),
                  "p_vs_nnunet": (paired_wilcoxon(per_case.dice.groupby(patient).mean(),
                                                  case_means(baseline).loc[per_case.index].dice.groupby(patient).mean())
                                  if tested else np.nan),
                  "fallbacks": fallbacks}
        studied = row.protocol == "study" and (study_scope is None or (dataset, region) == tuple(study_scope))
        record["reference_dice"] = row.reference_dice if studied else None
        record["reference_iou"] = row.reference_iou if studied else None
        for metric in METRICS:
            for statistic, value in summary(per_case[metric], resamples, seed, patient).items():
                record[f"{metric}_{statistic}"] = value
        record.update(replicate_summary(group))
        record.update(slice_detection(group))
        for metric in LESION_METRICS + CLICK_METRICS:  # over every case of the row, or none
            record[f"{metric}_mean"] = per_case[metric].mean(skipna=False) if metric in per_case else np.nan
        records.append(record)
    table = pd.DataFrame(records, columns=COLUMNS)
    for _, rows in table.groupby(["protocol", "dataset", "region"]):  # the tests within a protocol
        table.loc[rows.index, "p_vs_nnunet_holm"] = holm(rows.p_vs_nnunet)
    return table


def case_means(group: pd.DataFrame) -> pd.DataFrame:
    """A row's per-case metrics (indexed by case id, the lesion-wise ones where the frame has them)
    averaged over its training replicates."""
    columns = list(METRICS) + [metric for metric in LESION_METRICS + CLICK_METRICS if metric in group]
    return group.groupby(level="case_id")[columns].mean().sort_index()


def fmt(value, digits=4) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def spread(values: pd.Series, digits: int) -> str:
    """Mean of the replicates' values, with their sd when there are several."""
    if len(values) < 2:
        return fmt(values.mean(), digits)
    return f"{fmt(values.mean(), digits)} ± {fmt(values.std(ddof=1), digits)}"


def fmt_p(value) -> str:
    """A p-value to three decimals; below 0.001 as "< 0.001" (never 0.000)."""
    if value is not None and not np.isnan(value) and value < 0.001:
        return "< 0.001"
    return fmt(value, 3)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison as people read it: one formatted column per statistic."""
    rows = []
    for r in table.itertuples():
        runs = f" over {r.replicates} replicates" if r.replicates > 1 else ""
        label = r.row + (f" ({int(r.fallbacks)} without detection{runs})" if not np.isnan(r.fallbacks) else "")
        rows.append({
            "method": label, "protocol": r.protocol, "dataset": r.dataset, "region": r.region, "input": r.input,
            "ground truth used": r.ground_truth_used, "trained on": r.trained_on,
            "n": str(r.n) if r.n == r.n_cases else f"{r.n} ({r.n_cases} cases)",
            "Dice mean ± sd": f"{fmt(r.dice_mean)} ± {fmt(r.dice_sd)}",
            "Dice sd over seeds (replicates)": f"{fmt(r.dice_seed_sd)} ({r.replicates})",
            "Dice median": fmt(r.dice_median),
            "Dice 95% CI": f"[{fmt(r.dice_ci_low)}, {fmt(r.dice_ci_high)}]",
            "IoU mean ± sd": f"{fmt(r.iou_mean)} ± {fmt(r.iou_sd)}",
            "HD95 mm mean ± sd": f"{fmt(r.hd95_mean, 2)} ± {fmt(r.hd95_sd, 2)}",
            "HD95 mm median": fmt(r.hd95_median, 2),
            "NSD mean ± sd": f"{fmt(r.nsd_mean)} ± {fmt(r.nsd_sd)}",
            "FP lesions per case": fmt(r.lesions_fp_mean, 2),
            "PQ (lesion-wise)": fmt(r.panoptic_quality_mean),
            "Dice AUC over clicks": fmt(r.dice_auc_mean, 3),
            "p vs nnU-Net (Wilcoxon, Holm)": fmt_p(r.p_vs_nnunet_holm),
            "study Dice / IoU": f"{fmt(r.reference_dice)} / {fmt(r.reference_iou)}",
        })
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, detection: pd.DataFrame | None = None, notes=()) -> str:
    """The comparison as a Markdown table (plus the test named, YOLO detection metrics per region and notes)."""
    shown = display_table(table)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(values) + " |" for values in shown.itertuples(index=False)]
    lines += ["", TEST_NOTE]
    if detection is not None:
        lines += ["", "| YOLO detector | trained on | dataset | region | replicates | images (background) | mAP50 "
                  "| mAP50-95 | precision | recall |", "|---|---|---|---|---|---|---|---|---|---|"]
        splits = {"test": 0, "val": 1}  # the test split's detection first, val beside it
        ordered = detection.sort_values("split", key=lambda column: column.map(splits), kind="stable")
        for (slice_set, dataset, split, region), runs in ordered.groupby(["slice_set", "dataset", "split", "region"],
                                                                        sort=False):
            cells = [spread(runs[name], 3) for name in ("map50", "map50_95", "precision", "recall")]
            images = f"{int(runs.images.iloc[0])} ({int(runs.background_images.iloc[0])})"
            lines.append(f"| {split} | {SLICE_SETS[slice_set]} | {dataset} | {region} | {len(runs)} | {images} | "
                         + " | ".join(cells) + " |")
        lines += ["", "Detection metrics on the images of the detector's own slice set (ultralytics' validator): "
                  "the key slices hold the region on every image; the volume slices add tumour-free slices "
                  "(background images), where any detection is a false positive. Study: YOLOv8m mAP50 0.973 "
                  "(val, key slices)."]
    automatic = table[(table.ground_truth_used == "none") & table.slice_sensitivity.notna()]
    if not automatic.empty:
        lines += ["", "| automatic row on every test slice | dataset | region | slices | sensitivity | specificity |",
                  "|---|---|---|---|---|---|"]
        for r in automatic.itertuples():
            cells = [f"{fmt(getattr(r, name), 3)}" + (f" ± {fmt(getattr(r, name + '_seed_sd'), 3)}"
                                                      if r.replicates > 1 else "")
                     for name in ("slice_sensitivity", "slice_specificity")]
            lines.append(f"| {r.row} | {r.dataset} | {r.region} | {int(r.slices)} | " + " | ".join(cells) + " |")
        lines += ["", "Slice level: does the detector find the region on a slice (a box given) where the ground "
                  "truth holds it (sensitivity) and find nothing where it does not (specificity), over every "
                  "axial slice of the test volumes; mean ± sd over replicates."]
    if notes:
        for note in notes:
            lines += ["", f"**Note:** {note}"]
    return "\n".join(lines) + "\n"


def html(table: pd.DataFrame, notes=()) -> str:
    """The comparison as an HTML page for the Snakemake report (numbers inline, the test named)."""
    paragraphs = "".join(f"<p>{escape(text)}</p>" for text in (TEST_NOTE, *notes))
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Comparison</title></head><body>"
            + display_table(table).to_html(index=False, border=1) + paragraphs + "</body></html>\n")


def case_patients(split_paths: dict) -> dict[tuple[str, str], str]:
    """``{(dataset, case_id): patient_id}`` from the split tables, ``{dataset: path}``."""
    patients = {}
    for dataset, path in split_paths.items():
        for row in read_tsv(path).itertuples():
            patients[(dataset, row.case_id)] = row.patient_id
    return patients


def write_comparison(metric_paths, detection_paths, tsv_path, md_path, html_path, resamples: int, seed: int,
                     notes=(), inputs=None, detector: str = "YOLOv8m", split_paths=None, study_scope=None,
                     lesionwise_paths=(), training=None) -> None:
    """comparison.tsv, .md and .html (with ``notes``, e.g. on stand-in models, and what each method
    saw) from every method's metrics table; ``detection_paths``: the YOLO metrics by (dataset, slice
    set, region, seed);
    ``split_paths``: ``{dataset: split table}``, whose patients are the statistical unit;
    ``study_scope``: the (dataset, region) of the study's reference numbers; ``lesionwise_paths``:
    the official lesion-wise metrics of the 3D runs; ``training``: what each method's models trained on."""
    table = comparison_table(load_metrics(metric_paths, lesionwise_paths), resamples, seed, inputs, detector,
                             case_patients(split_paths or {}), study_scope, training)
    write_tsv(table, tsv_path)
    detection = None
    if detection_paths:
        detection = pd.concat([read_tsv(path).assign(dataset=dataset, slice_set=slice_set, region=region, seed=seed)
                               for (dataset, slice_set, region, seed), path in detection_paths.items()],
                              ignore_index=True)
    with staged_file(md_path) as tmp:
        Path(tmp).write_text(markdown(table, detection, notes))
    with staged_file(html_path) as tmp:
        Path(tmp).write_text(html(table, notes))
    for r in table.itertuples():
        log.info("%s: Dice %.4f (study %s), HD95 %.2f mm, NSD %.4f, n=%d patients, %d cases", r.row, r.dice_mean,
                 r.reference_dice, r.hd95_mean, r.nsd_mean, r.n, r.n_cases)


def row_label(method: str, prompt: str) -> str:
    """The study's label of a (method, prompt) pair, else a readable fallback."""
    for row in ROWS:
        if (row.method, row.prompt) == (method, prompt):
            return row.label.format(detector="YOLO")
    return f"{method} {prompt}".strip()


def study_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """Test-split metrics of the study's rows, labelled and in the study's order."""
    order = list(dict.fromkeys(row.label.format(detector="YOLO") for row in ROWS))
    if "split" in metrics:
        metrics = metrics[metrics.split.isna() | metrics.split.isin(["", "test"])]
    table = metrics.assign(row=[row_label(m, p) for m, p in zip(metrics.method, metrics.prompt)])
    table = table[table.row.isin(order)]
    table["row"] = pd.Categorical(table.row, [label for label in order if label in set(table.row)])
    return table.sort_values("row")


def case_counts(table: pd.DataFrame) -> str:
    """Cases per dataset, as a figure names them: "n = 13 (brats2024), 15 (brats2019)"."""
    counts = table.groupby("dataset", sort=False).case_id.nunique()
    return "n = " + ", ".join(f"{n} ({dataset})" for dataset, n in counts.items())


def plot_distributions(metrics: pd.DataFrame, path) -> None:
    import seaborn as sns

    plt = pyplot()
    table = study_rows(metrics)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(6 * len(METRICS), 0.55 * table.row.nunique() + 2),
                             sharey=True)
    for axis, (metric, name) in zip(axes, METRICS.items()):
        sns.boxplot(data=table, x=metric, y="row", ax=axis, color="lightsteelblue", showfliers=False)
        sns.stripplot(data=table, x=metric, y="row", ax=axis, color="black", size=3, alpha=0.6)
        axis.set_xlabel(f"{name} per test case")
        axis.set_ylabel("")
        axis.set_title(f"{name} per method")
        if metric != "hd95":
            axis.set_xlim(0, 1)
    fig.suptitle(f"Test-case distributions ({case_counts(table)} cases)")
    save_figure(fig, path)


def jitter_levels(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean LoRA-SAM Dice per box jitter in pixels (the GT box is 0)."""
    sam = metrics[(metrics.method == "lora_sam") & metrics.prompt.str.match(r"^gt_box(_jitter\d+)?$")]
    pixels = sam.prompt.str.extract(r"(\d+)$")[0].fillna("0").astype(int)
    return sam.assign(jitter=pixels).groupby("jitter").dice.agg(["mean", "std"]).reset_index()


def plot_jitter(metrics: pd.DataFrame, path) -> None:
    plt = pyplot()
    levels = jitter_levels(metrics)
    fig, axis = plt.subplots(figsize=(7, 4.5))
    axis.errorbar(levels.jitter, levels["mean"], yerr=levels["std"], marker="o", capsize=3,
                  label="LoRA-SAM + jittered GT box (mean ± sd)")
    for method, prompt, style in (("lora_sam", "no_prompt", "--"), ("lora_sam", "yolo_box", ":")):
        group = metrics[(metrics.method == method) & (metrics.prompt == prompt)]
        if not group.empty:
            axis.axhline(group.dice.mean(), linestyle=style, color="grey", label=row_label(method, prompt))
    axis.set_xlabel("box jitter p (pixels; each coordinate moved by up to ±p)")
    axis.set_ylabel("mean Dice on the test cases")
    axis.set_ylim(0, 1)
    axis.set_title("Robustness of LoRA-SAM to box prompt error")
    axis.legend(loc="lower left")
    save_figure(fig, path)


def plot_area(metrics: pd.DataFrame, path) -> None:
    import seaborn as sns

    plt = pyplot()
    table = study_rows(metrics[metrics.prompt != "3d"])  # slice areas only, not volumes
    fig, axis = plt.subplots(figsize=(8, 5))
    table = table.assign(row=table.row.cat.remove_unused_categories())
    sns.scatterplot(data=table, x="area_true", y="dice", hue="row", style="dataset", ax=axis, s=30)
    axis.set_xscale("log")
    axis.set_xlabel("tumour area on the slice (pixels, log scale)")
    axis.set_ylabel("Dice")
    axis.set_ylim(0, 1.02)
    datasets = ", ".join(f"{name} ({marker})" for name, marker in zip(table.dataset.unique(), ("dots", "crosses", "squares")))
    axis.set_title(f"Dice against tumour size, test cases: {datasets}")
    axis.legend(title="method / dataset", bbox_to_anchor=(1.02, 1), loc="upper left", fontsize="small")
    save_figure(fig, path)


GROUND_TRUTH = "yellow"  # outlined in black: visible on a bright tumour and beside tab10's colours


def plot_examples(metrics: pd.DataFrame, slices_dir, path) -> None:
    """Best, median and worst test cases by LoRA-SAM + GT box Dice, every method's contour."""
    from matplotlib import patheffects

    from .slices import load_sample

    plt = pyplot()
    table = study_rows(metrics)
    ranking = table[(table.method == "lora_sam") & (table.prompt == "gt_box")].sort_values("dice")
    if ranking.empty:
        ranking = table.sort_values("dice")
    picks = {"worst": ranking.iloc[0].case_id, "median": ranking.iloc[len(ranking) // 2].case_id,
             "best": ranking.iloc[-1].case_id}
    table = table[(table.dataset == ranking.iloc[0].dataset) & table.mask_file.str.endswith(".npz")]
    labels = [label for label in table.row.cat.categories if label in set(table.row)]
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6))
    for axis, (title, case_id) in zip(axes, picks.items()):
        sample = load_sample(slices_dir, case_id)
        axis.imshow(sample.image, cmap="gray")
        contour = axis.contour(sample.mask, levels=[0.5], colors=GROUND_TRUTH, linewidths=2)
        contour.set(path_effects=[patheffects.withStroke(linewidth=4, foreground="black")])
        for number, label in enumerate(labels):
            rows = table[(table.row == label) & (table.case_id == case_id)]
            if rows.empty:
                continue
            with np.load(rows.iloc[0].mask_file) as saved:
                if saved["mask"].any():
                    axis.contour(saved["mask"], levels=[0.5], colors=[colours(number)], linewidths=1)
        dice_value = ranking.set_index("case_id").dice.get(case_id, np.nan)
        axis.set_title(f"{title}: {case_id}\nLoRA-SAM + GT box Dice {dice_value:.3f}")
        axis.axis("off")
    handles = [plt.Line2D([], [], color=GROUND_TRUTH, linewidth=2, label="ground truth",
                          path_effects=[patheffects.withStroke(linewidth=4, foreground="black")])]
    handles += [plt.Line2D([], [], color=colours(i), label=label) for i, label in enumerate(labels)]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize="small")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    save_figure(fig, path)


def plot_training(lora_history, yolo_results, nnunet_history, path) -> None:
    """Training curves of LoRA-SAM, YOLO and nnU-Net, each from its own record (those present)."""
    plt = pyplot()
    panels = []
    if lora_history:
        history = read_tsv(lora_history)
        panels.append(("LoRA-SAM", history.epoch, history.train_loss, "train loss (soft Dice + BCE)",
                       history.val_dice, "val Dice (GT box)"))
    if yolo_results:
        results = pd.read_csv(yolo_results)
        results.columns = [c.strip() for c in results.columns]
        panels.append(("YOLO", results.epoch, results["train/box_loss"], "train box loss",
                       results["metrics/mAP50(B)"], "val mAP50"))
    if nnunet_history:
        curves = read_tsv(nnunet_history)
        panels.append(("nnU-Net (its loss is CE minus soft Dice: below 0 is normal)", curves.epoch,
                       curves.train_loss, "train loss (CE - soft Dice)", curves.pseudo_dice, "val pseudo Dice"))
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 4.4), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        title, *curves = panel
        training_panel(axis, *curves, title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_replicates(metrics: pd.DataFrame, path) -> None:
    """Each row's replicate means (points) with its mean ± sd over seeds, and beside it the row's
    difference from its baseline with the seed noise of both (sqrt of the summed variances): a gap
    wider than that bar is more than seed noise."""
    plt = pyplot()
    table = study_rows(metrics)  # seeds as text already (load_metrics)
    means = table.groupby(["row", "dataset", "seed"], observed=True).dice.mean().reset_index()
    rows = [(label, dataset) for (label, dataset), _ in means.groupby(["row", "dataset"], observed=True, sort=True)]
    by_label = {row.label.format(detector="YOLO"): row for row in ROWS}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.5 * len(rows) + 2.2), sharey=True)
    centre = {}
    for y, (label, dataset) in enumerate(rows):
        values = means[(means.row == label) & (means.dataset == dataset)].dice
        centre[(label, dataset)] = (values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0)
        left.scatter(values, [y] * len(values), color="black", s=14, zorder=3)
        left.errorbar(values.mean(), y, xerr=centre[(label, dataset)][1], fmt="o", color="tab:blue", capsize=4)
        baseline = by_label[label].baseline
        base = centre.get((BASELINES[baseline].label, dataset)) if baseline else None
        if base is not None:
            mean, sd = centre[(label, dataset)]
            right.errorbar(mean - base[0], y, xerr=np.hypot(sd, base[1]), fmt="s", color="tab:red", capsize=4)
    left.set_yticks(range(len(rows)), [f"{label} ({dataset})" for label, dataset in rows])
    left.invert_yaxis()
    left.set_xlabel("mean Dice of each replicate (points); mean ± sd over seeds")
    left.set_title(f"Training seeds: {table.seed[table.seed != ''].nunique()} replicates")
    right.axvline(0, color="grey", linewidth=1)
    right.set_xlabel("Dice difference from the row's baseline ± seed noise of both")
    right.set_title("Method differences against seed noise")
    fig.tight_layout()
    save_figure(fig, path)


# Methods with prompts beyond one box (sambrats.clicks): their label in figures and their one-box row's prompt.
PROMPTED = {"lora_sam": ("LoRA-SAM, key slices (2D)", "gt_box"), "medsam2": ("MedSAM-2, test volumes (3D)", "3d")}
PROMPT_TYPES = {"box": "GT box", "point_interior": "interior point", "points1": "1 random point",
                "points3": "3 random points", "points5": "5 random points", "gt_box_point": "GT box + interior point",
                "gt_box_clicks": "GT box + correction clicks"}


def load_clicks(click_paths: dict) -> pd.DataFrame:
    """The click protocol's steps of each method, ``{method: [clicks.tsv, ...]}``, each case's Dice
    per step averaged over the method's training replicates."""
    tables = [read_tsv(path).assign(method=method) for method, paths in click_paths.items() for path in paths]
    if not tables:
        return pd.DataFrame(columns=["method", "case_id", "step", "dice"])
    steps = pd.concat(tables, ignore_index=True)
    return steps.groupby(["method", "case_id", "step"], as_index=False).dice.mean()


def plot_clicks(steps: pd.DataFrame, path, seed: int, resamples: int = 2000) -> None:
    """Dice against the number of correction clicks (0: the GT box alone), per method: the mean over
    the test cases with its 95% bootstrap CI."""
    plt = pyplot()
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for method, group in steps.groupby("method", sort=False):
        by_step = group.groupby("step").dice
        bounds = np.array([bootstrap_ci(values, resamples, seed) for _, values in by_step])
        counts = group.case_id.nunique()
        axis.plot(by_step.mean().index, by_step.mean(), marker="o", label=f"{PROMPTED[method][0]}, {counts} cases")
        axis.fill_between(by_step.mean().index, bounds[:, 0], bounds[:, 1], alpha=0.2)
    axis.set_xlabel("correction clicks after the GT box (CVPR 2025 protocol)")
    axis.set_ylabel("mean Dice (95% bootstrap CI)")
    axis.set_ylim(0, 1)
    axis.set_title("Interactive refinement: Dice per click")
    if not steps.empty:
        axis.legend(loc="lower right")
    save_figure(fig, path)


def prompt_types(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-case Dice of each prompted method's prompt types (test cases), the one-box row's as "box"
    on the cases its other prompts ran on."""
    tables = []
    for method, (_, box) in PROMPTED.items():
        own = metrics[(metrics.method == method) & metrics.prompt.isin([box, *PROMPT_TYPES])]
        if "split" in own:
            own = own[own.split.isna() | own.split.isin(["", "test"])]
        prompted = own[own.prompt != box]
        if prompted.empty:
            continue
        boxed = own[(own.prompt == box) & own.set_index(["dataset", "case_id"]).index.isin(
            prompted.set_index(["dataset", "case_id"]).index)]
        tables.append(pd.concat([boxed.assign(prompt="box"), prompted]).assign(method=method))
    columns = ["method", "prompt", "dataset", "case_id", "dice"]
    return pd.concat(tables, ignore_index=True)[columns] if tables else pd.DataFrame(columns=columns)


def plot_prompt_types(metrics: pd.DataFrame, path, seed: int, resamples: int = 2000) -> None:
    """Mean Dice (95% bootstrap CI) per prompt type and method, the GT box's first."""
    plt = pyplot()
    table = prompt_types(metrics)
    fig, axis = plt.subplots(figsize=(8, 4.8))
    order = [prompt for prompt in PROMPT_TYPES if prompt in set(table.prompt)]
    width = 0.8 / max(table.method.nunique(), 1)
    for number, (method, group) in enumerate(table.groupby("method", sort=False)):
        means, errors, positions = [], [], []
        for position, prompt in enumerate(order):
            values = group[group.prompt == prompt].dice
            if values.empty:
                continue
            low, high = bootstrap_ci(values, resamples, seed)
            means.append(values.mean())
            errors.append((values.mean() - low, high - values.mean()))
            positions.append(position + (number - (table.method.nunique() - 1) / 2) * width)
        axis.bar(positions, means, width=width, yerr=np.array(errors).T if errors else None, capsize=3,
                 label=f"{PROMPTED[method][0]}, {group.case_id.nunique()} cases")
    axis.set_xticks(range(len(order)), [PROMPT_TYPES[prompt] for prompt in order], rotation=25, ha="right")
    axis.set_ylabel("mean Dice (95% bootstrap CI)")
    axis.set_ylim(0, 1.15)
    axis.set_yticks(np.linspace(0, 1, 6))
    axis.set_title("Dice per prompt type beside the GT box")
    if order:
        axis.legend(loc="upper center", ncol=2)
    save_figure(fig, path)


FIGURES = ("distributions", "dice_vs_jitter", "dice_vs_area", "examples", "training_curves", "replicates",
           "dice_vs_clicks", "dice_per_prompt")


def write_figures(metric_paths, slices_dir, outputs: dict, seed: int, lora_history=None, yolo_results=None,
                  nnunet_history=None, click_paths=None) -> None:
    """Every comparison figure: ``outputs`` maps each name of ``FIGURES`` to its PNG (an SVG is
    written beside it); ``click_paths``: each prompted method's click-protocol tables."""
    np.random.seed(seed)  # seaborn's strip-plot jitter draws from NumPy's global generator
    metrics = load_metrics(metric_paths)
    per_case = replicate_means(metrics)  # each case once per row, averaged over the training seeds
    for path in outputs.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    plot_distributions(per_case, outputs["distributions"])
    plot_jitter(per_case, outputs["dice_vs_jitter"])
    plot_area(per_case, outputs["dice_vs_area"])
    plot_examples(per_case, slices_dir, outputs["examples"])
    plot_training(lora_history, yolo_results, nnunet_history, outputs["training_curves"])
    plot_replicates(metrics, outputs["replicates"])
    plot_clicks(load_clicks(click_paths or {}), outputs["dice_vs_clicks"], seed)
    plot_prompt_types(per_case, outputs["dice_per_prompt"], seed)
