"""The Qt-free core of UNet Studio: configuration, I/O, model, training, inference, post-processing.

Nothing under this package imports Qt (a test checks it); PyTorch is imported by the modules that need it.
"""
