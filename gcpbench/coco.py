"""COCO facts shared by detection (which computes them) and the report (which reads them)."""
from __future__ import annotations

# The six COCO average precisions of a box or mask task -> the suffix of mmdet's metric name
# (``coco/bbox_mAP_50``).
COCO_METRICS: dict[str, str] = {"AP": "mAP", "AP50": "mAP_50", "AP75": "mAP_75", "APs": "mAP_s", "APm": "mAP_m", "APl": "mAP_l"}
