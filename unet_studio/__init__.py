"""UNet Studio: interactive U-Net segmentation of microscopy images."""

__version__ = "0.1.0"
