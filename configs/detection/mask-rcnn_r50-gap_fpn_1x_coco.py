# Mask R-CNN, ResNet-50 FPN, 1x schedule: GAP baseline (standard ResNet, ImageNet GAP weights).
# Everything else is mmdet's own config; only the backbone type changes.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['gcpbench.detection'], allow_failed_imports=False)
model = dict(backbone=dict(type='GCPResNet', mode='gap'))
