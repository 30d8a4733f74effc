"""Exception types of UNet Studio.

Every error that a person can cause (a bad file, a model that does not fit an image, a full disk) is raised
as a subclass of :class:`UNetStudioError` with a message that names the thing and says what to do.
Front ends catch this one type and show its message; anything else is a bug and keeps its traceback.
"""


class UNetStudioError(Exception):
    """Base class of errors whose message is meant for the person using the tool."""


class ImageReadError(UNetStudioError):
    """An image or label file cannot be read, or holds data the tool cannot use."""


class ImageWriteError(UNetStudioError):
    """An output file cannot be written (read-only folder, full disk, ...)."""


class ModelFileError(UNetStudioError):
    """A model folder is missing files, is from an unknown version, or is not safe to load."""


class ConfigError(UNetStudioError):
    """A configuration value is out of range or inconsistent."""


class DataError(UNetStudioError):
    """Training data is unusable: unpaired files, mismatched shapes, no labelled pixels, ..."""


class TrainingError(UNetStudioError):
    """Training failed in a way the person should hear about (NaN loss, out of memory, ...)."""


class InferenceError(UNetStudioError):
    """Prediction cannot run: the image does not fit the model, or memory runs out even for the smallest tile."""
