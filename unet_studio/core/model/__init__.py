"""The network and its folder on disk: the U-Net (:mod:`.unet`) and the model folder (:mod:`.checkpoint`)."""

from .checkpoint import ModelInfo, load_model, load_optimizer_state, read_model_info, save_model
from .unet import UNet, context_margin, is_admissible, nearest_admissible, output_size, size_info

__all__ = [
    "ModelInfo", "UNet", "context_margin", "is_admissible", "load_model", "load_optimizer_state",
    "nearest_admissible", "output_size", "read_model_info", "save_model", "size_info",
]
