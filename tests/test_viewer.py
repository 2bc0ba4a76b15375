"""The 3D viewer: case choice, embedded volumes, the pinned NiiVue bundle, and the page in a real browser."""

from __future__ import annotations

import base64
import gzip
import io
import shutil
import tarfile
import time

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sambrats import viewer
from slurm_cluster import install_debian_packages_or_skip

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-quic", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def metrics_rows(method: str, dice_by_case: dict, seed: str = "", split: str = "test", area: int = 100) -> list[dict]:
    return [{"case_id": case, "method": method, "prompt": "3d", "dice": dice, "seed": seed, "split": split,
             "area_true": area} for case, dice in dice_by_case.items()]


def test_the_baseline_best_median_and_worst_test_cases_with_the_region_over_its_replicates_then_named_ones():
    metrics = pd.DataFrame(
        metrics_rows("nnunet_3d", {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.7, "e": 0.5}, "2024")
        + metrics_rows("nnunet_3d", {"a": 0.1, "b": 0.1, "c": 0.5, "d": 0.7, "e": 0.5}, "2025")  # a: 0.5 on average
        + metrics_rows("nnunet_3d", {"t": 1.0}, "2024", split="train")  # not a test case
        + metrics_rows("nnunet_3d", {"n": 1.0}, "2024", area=0)  # no region: an empty mask's Dice 1 is no best case
        + metrics_rows("medsam2", {"b": 0.99, "z": 0.0}))
    # means a 0.5, b 0.1, c 0.5, d 0.7, e 0.5: ordered b, a, c, e, d (ties by case id); median the 3rd
    assert viewer.pick_cases(metrics, "nnunet_3d", ["z", "d"]) == [
        ("d", "best"), ("c", "median"), ("b", "worst"), ("z", "named in the config")]
    assert viewer.pick_cases(metrics, "medsam2") == [("b", "best"), ("z", "worst")]  # two cases: median = worst
    with pytest.raises(ValueError, match="no test case with the region of the viewer's baseline 'sam'"):
        viewer.pick_cases(metrics, "sam")


def test_a_volume_is_embedded_cropped_to_the_brain_where_it_lies_in_the_scanner():
    volume = np.zeros((20, 18, 12), dtype=np.float32)
    volume[5:9, 4:15, 3:7] = np.arange(4 * 11 * 4).reshape(4, 11, 4)
    affine = np.array([[-1.0, 0, 0, 90], [0, -2.0, 0, 120], [0, 0, 3.0, -70], [0, 0, 0, 1]])
    reference = nib.Nifti1Image(volume, affine)
    reference.header.set_xyzt_units("mm")
    box = viewer.brain_box(volume, margin=2)
    assert box == (slice(3, 11), slice(2, 17), slice(1, 9))
    encoded = viewer.embedded_nifti(volume, reference, box)
    raw = gzip.decompress(base64.b64decode(encoded))
    image = nib.Nifti1Image.from_bytes(raw)
    assert image.get_data_dtype() == np.uint8 and image.shape == (8, 15, 8)
    np.testing.assert_array_equal(np.asarray(image.dataobj), volume[box].astype(np.uint8))
    # the crop's first voxel is where voxel (3, 2, 1) of the volume is, in both forms
    np.testing.assert_allclose(image.affine @ [0, 0, 0, 1], affine @ [3, 2, 1, 1])
    np.testing.assert_allclose(image.get_qform() @ [0, 0, 0, 1], affine @ [3, 2, 1, 1])
    assert image.header.get_zooms() == (1.0, 2.0, 3.0)
    assert viewer.embedded_nifti(volume, reference, box) == encoded  # no time stamp: the same bytes
    assert viewer.brain_box(np.zeros((4, 5, 6))) == (slice(0, 4), slice(0, 5), slice(0, 6))


def npm_tarball(path, bundle: bytes) -> str:
    """A tarball laid out as npm's, its integrity."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"package/dist/{viewer.BUNDLE}")
        info.size = len(bundle)
        tar.addfile(info, io.BytesIO(bundle))
    return viewer.sri_digest(path.read_bytes())


def test_more_masks_than_colours_fail_naming_the_case_before_any_volume_is_read():
    """One colour per method's mask: a page with more masks than colours would drop the last ones."""
    job = viewer.ViewerJob("brats2024", "gli", "wt", ("t2f",), "nnunet_3d")
    masks = pd.DataFrame({"method": ["m"] * (len(viewer.MASK_COLOURS) + 1)})
    with pytest.raises(ValueError, match=f"BraTS-GLI-00000-000: {len(viewer.MASK_COLOURS) + 1} masks to show"):
        viewer.case_view({"case_id": "BraTS-GLI-00000-000", "t2f": "/no/such/file.nii.gz"}, "", masks, job)
    assert len(set(viewer.MASK_COLOURS)) == len(viewer.MASK_COLOURS) and set(viewer.MASK_COLOURS) <= set(viewer.CSS_COLOURS)


def test_niivue_is_kept_only_from_the_tarball_of_the_pinned_integrity(tmp_path):
    integrity = npm_tarball(tmp_path / "niivue.tgz", b"var niivue = {};")
    out = tmp_path / "library"
    with pytest.raises(ValueError, match="not the pinned viewer.niivue.integrity sha512-"):
        viewer.fetch_niivue(str(tmp_path / "niivue.tgz"), "sha512-" + "A" * 86 + "==", out)
    assert not out.exists()
    with pytest.raises(RuntimeError, match="set viewer.niivue.tarball to a local copy"):
        viewer.fetch_niivue(str(tmp_path / "absent.tgz"), integrity, out)
    viewer.fetch_niivue(str(tmp_path / "niivue.tgz"), integrity, out)
    assert (out / viewer.BUNDLE).read_bytes() == b"var niivue = {};"
    assert (out / viewer.LICENCE).read_text().startswith("BSD 2-Clause License\n\nCopyright (c) 2021, Niivue")


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium (installed when missing, as the SLURM test installs SLURM)."""
    install_debian_packages_or_skip({"chromium": "chromium"}, "a headless browser")
    return shutil.which("chromium")


def green_pixels(png: bytes) -> int:
    """Pixels where green dominates (the ground truth's colour map)."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int(((rgb[..., 1] > 100) & (rgb[..., 1] > rgb[..., 0] + 50) & (rgb[..., 1] > rgb[..., 2] + 50)).sum())


def canvas_after_drawing(page) -> bytes:
    """A screenshot of the viewer's canvas once NiiVue has drawn (two animation frames)."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    time.sleep(0.3)
    return page.locator("#viewer").screenshot()


def test_the_demo_viewer_opens_offline_draws_and_toggles_masks(demo_run, chromium):
    """The demo's page from its file in headless Chromium: no console error, nothing fetched from a
    network, a canvas that is not blank, and a click on the ground truth's legend entry hides it."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    page_path = demo_run / "results/viewer/wt/brats2019/index.html"
    text = page_path.read_text()
    assert "BSD 2-Clause License" in text and "NIIVUE" in text  # the licence and the bundle inline
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_path.as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            legend = page.locator("#legend label").all_inner_texts()
            assert legend[0] == "ground truth" and any("nnU-Net 3D (seed 2024), Dice " in entry for entry in legend)
            assert any(entry.startswith("MedSAM-2 zero-shot, 3D, Dice ") for entry in legend)
            shown = canvas_after_drawing(page)
            pixels = np.asarray(Image.open(io.BytesIO(shown)).convert("L"))
            assert (pixels > 20).mean() > 0.05 and len(np.unique(pixels)) > 20  # the MRI is drawn
            assert green_pixels(shown) > 20  # and the ground truth over it
            page.locator("#legend input[data-overlay='0']").click()
            hidden = canvas_after_drawing(page)
            assert green_pixels(hidden) < green_pixels(shown) / 4
            page.locator("#legend input[data-overlay='0']").click()
            assert green_pixels(canvas_after_drawing(page)) > green_pixels(hidden)
            first_case = page.evaluate("document.body.dataset.case")
            page.select_option("#case", "2")  # another case: another picture
            page.wait_for_function("(first) => document.body.dataset.case !== first", arg=first_case)
            assert canvas_after_drawing(page) != shown
        finally:
            browser.close()
    assert not errors, errors
    assert requests and all(url.startswith(("file://", "data:", "blob:")) for url in requests), requests


def test_a_paper_scale_case_costs_about_two_megabytes_per_contrast(real_data, tmp_path):
    """The real BraTS 2019 case (240 x 240 x 155) as a page shows it: four contrasts cropped to the
    brain, the ground truth and two masks; the README's page weight comes from here."""
    folder = real_data / "BraTS2019/HGG/Brats18_CBICA_AME_1"
    row = {"case_id": "Brats18_CBICA_AME_1", "seg": str(folder / "Brats18_CBICA_AME_1_seg.nii.gz")}
    row |= {modality: str(folder / f"Brats18_CBICA_AME_1_{modality}.nii.gz") for modality in ("t1ce", "flair", "t1", "t2")}
    seg = nib.load(row["seg"])
    mask = nib.Nifti1Image((np.asarray(seg.dataobj) > 0).astype(np.uint8), seg.affine, seg.header)
    nib.save(mask, tmp_path / "mask.nii.gz")
    masks = pd.DataFrame(metrics_rows("nnunet_3d", {row["case_id"]: 0.8}, "2024") + metrics_rows("medsam2", {row["case_id"]: 0.7}))
    masks["mask_file"] = str(tmp_path / "mask.nii.gz")
    job = viewer.ViewerJob("brats2019", "legacy", "wt", ("t1ce", "flair", "t1", "t2"), "nnunet_3d")
    view = viewer.case_view(row, "best", masks, job)
    assert [background["name"] for background in view["backgrounds"]] == ["t1ce", "flair", "t1", "t2"]
    assert [overlay["name"] for overlay in view["overlays"]] == ["ground truth", "nnU-Net 3D (seed 2024)", "MedSAM-2 zero-shot, 3D"]
    contrast_mb = [len(background["nifti"]) / 1e6 for background in view["backgrounds"]]
    assert all(1.5 < size < 2.5 for size in contrast_mb), contrast_mb  # 2.0 to 2.2 MB measured
    assert all(len(overlay["nifti"]) < 50_000 for overlay in view["overlays"])
    truth = nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(view["overlays"][0]["nifti"])))
    assert truth.shape == (145, 183, 145) and np.asarray(truth.dataobj).sum() == mask.get_fdata().sum()  # tumour kept whole
