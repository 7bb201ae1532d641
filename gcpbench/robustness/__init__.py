"""ImageNet-C / ImageNet-P: AlexNet baselines, exact metrics, evaluation and data generation.

Modules: ``baselines`` (AlexNet reference numbers), ``metrics`` (CE, mCE, relative mCE, FP,
T5D), ``imagenet_c`` / ``imagenet_p`` (resumable evaluation), ``make_c`` / ``make_p`` (data
generation), ``video`` (mp4 decode/encode), ``trees`` (tree scanning and checks).
"""
