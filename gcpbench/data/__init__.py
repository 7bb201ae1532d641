"""Data: ImageFolder datasets and loaders, transforms, the built-in synthetic set, manifests.

Modules: ``synthetic`` (learnable ImageNet-style set, cached), ``transforms`` (per-family
augmentation, validation crop), ``folders`` (ImageFolder with one-line errors, tree checks,
DataLoaders), ``manifests`` (ImageNet / -C / -P / COCO layouts and checks), ``source`` (which
tree a command uses: ``--data`` or the built-in set), ``synthetic_coco`` (detection set).
"""
