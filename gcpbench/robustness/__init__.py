"""Robustness benchmarks: ImageNet-C / -P, ImageNet variants, CIFAR-10-C / -100-C / -10-P.

Modules: ``benchmarks`` (definitions of the benchmarks and the AlexNet reference numbers),
``metrics`` (pure: CE, mCE, relative mCE, FP, T5D, unnormalised means), ``engine`` (where a
result lives, its resume log, the per-item tallies, the ``Benchmark`` base class and the one
resumable evaluation routine ``evaluate``), ``runner`` (the single loading pipeline),
``loading`` (files and arrays to tensors), ``trees`` (tree scanning, checks, items and stray
folders), ``imagenet_c`` / ``imagenet_p`` / ``cifar`` (each benchmark's request, data and
summary: one ``Benchmark`` subclass each), ``variants`` (ImageNetV2, -Sketch, -R, -A scored like
eval-imagenet), ``make_c`` / ``make_p`` / ``generate`` (data generation), ``corruptions`` (the
ImageNet-C recipe), ``images`` (benchmark geometry, tolerant reading), ``video`` (mp4
decode/encode), ``defaults`` (the synthetic -C / -P trees made once).
"""
