# Faster R-CNN, ResNet-50 FPN, 1x: GCP_D (GCP-pretrained weights, layer4 down-samples again).
# Put the GCP checkpoint at the path below or pass `gcpbench detect --ckpt PATH`.
_base_ = './faster-rcnn_r50-gap_fpn_1x_coco.py'
model = dict(backbone=dict(mode='gcp_d', init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet50_gcp.pth')))
