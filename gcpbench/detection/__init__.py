"""mmdetection integration: the GCP backbone, config building, training + COCO evaluation.

Importing this package registers ``GCPResNet`` in mmdet's ``MODELS`` registry (configs reach
it through ``custom_imports=dict(imports=['gcpbench.detection'])``) and makes mmengine read
local checkpoints with ``torch.load(weights_only=True)`` through inert stand-ins
(:mod:`gcpbench.detection.checkpoints`).
"""
import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)  # raised by mmengine's import

from gcpbench.detection.backbone import MODES, GCPResNet  # noqa: E402
from gcpbench.detection.checkpoints import allow_mmengine_checkpoints  # noqa: E402

allow_mmengine_checkpoints()

__all__ = ["GCPResNet", "MODES", "allow_mmengine_checkpoints"]
