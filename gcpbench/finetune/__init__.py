"""Fine-grained transfer: ``gcpbench finetune`` on CUB-200-2011, FGVC-Aircraft, Stanford Cars or an
ImageFolder tree with the published iSQRT-COV protocol (:mod:`.protocol`), through the training
loop of :mod:`gcpbench.train` (:mod:`.runner`), from any checkpoint (:mod:`.model`), tested on the
centre crop and its mirror (:mod:`.evaluation`)."""
from gcpbench.finetune.runner import FinetuneOptions, finetune

__all__ = ["FinetuneOptions", "finetune"]
