"""The model zoo: ResNet-18/34/50/101, MobileNetV2, ShuffleNetV2 x1.0, each GAP or GCP."""
from gcpbench.models.registry import (
    ARCHS, FAMILIES, MODELS, ModelInfo, family_of, list_models, model_info, model_name,
)
from gcpbench.models.weights import build, convert, load_model, save_checkpoint

__all__ = ["ARCHS", "FAMILIES", "MODELS", "ModelInfo", "build", "convert", "family_of", "list_models", "load_model",
           "model_info", "model_name", "save_checkpoint"]
