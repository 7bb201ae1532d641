# Faster R-CNN, ResNet-101 FPN, 1x: GCP_D.
_base_ = './faster-rcnn_r50-gcp-d_fpn_1x_coco.py'
model = dict(backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet101_gcp.pth')))
