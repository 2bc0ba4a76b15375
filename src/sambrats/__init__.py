"""sambrats: promptable foundation models against nnU-Net for glioma segmentation on BraTS MRI."""

__version__ = "0.1.0"
