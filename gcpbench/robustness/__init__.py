"""Robustness benchmarks: ImageNet-C / -P, ImageNet variants, CIFAR-10-C / -100-C / -10-P.

Modules: ``benchmarks`` (definitions of the ImageNet variants and the CIFAR sets),
``baselines`` (AlexNet reference numbers of ImageNet-C / -P and their name lists), ``metrics``
(pure: CE, mCE, relative mCE, FP, T5D, unnormalised means), ``engine`` (the one resumable
evaluation routine), ``tallies`` (per-item tallies that feed its resume log), ``runner`` (the
single loading pipeline), ``loading`` (files and arrays to tensors), ``imagenet_c`` /
``imagenet_p`` / ``cifar`` (what each benchmark reads and how it summarises), ``variants``
(ImageNetV2, -Sketch, -R, -A scored like eval-imagenet), ``make_c`` / ``make_p`` (data
generation), ``video`` (mp4 decode/encode), ``trees`` (tree scanning and checks).
"""
