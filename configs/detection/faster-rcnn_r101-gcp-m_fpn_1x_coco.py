# Faster R-CNN, ResNet-101 FPN, 1x: GCP_M.
_base_ = './faster-rcnn_r101-gcp-d_fpn_1x_coco.py'
model = dict(backbone=dict(mode='gcp_m'))
