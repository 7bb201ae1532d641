# Faster R-CNN, ResNet-101 FPN, 1x: GAP baseline.
_base_ = './faster-rcnn_r50-gap_fpn_1x_coco.py'
model = dict(backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
