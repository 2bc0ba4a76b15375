"""Named stand-in model presets, importable without torch (the Snakefile reads them at parse time)."""

# Tiny SAM stand-ins: (image size, vision width, vision layers, neck/prompt/decoder width).
SAM_STANDINS = {
    "tiny-sam-256": dict(image_size=256, vision_width=96, vision_layers=2, width=128),
}
# MedSAM-2 stand-ins: sam2.1_hiera_t trained on synthetic clips, in MedSAM-2's checkpoint format.
MEDSAM2_STANDINS = ("standin-hiera-t",)
