# Faster R-CNN, ResNet-50 FPN, 1x: GCP_M (layer4 at stride 1 as trained, then 2x2 max-pooling on C5).
_base_ = './faster-rcnn_r50-gcp-d_fpn_1x_coco.py'
model = dict(backbone=dict(mode='gcp_m'))
