"""The paper's experiments as built-in sweeps, derived from the package's tables (not retyped).

* ``imagenet``: every row of the paper's ImageNet table (:func:`gcpbench.report.paper.paper_imagenet`):
  6 architectures x GAP / GCP x LRnorm / LRfast / LRadju, plus the 128-d GCP variants (40 runs).
* ``robustness``: the models of the paper's robustness table (LRnorm, GCP at 256 d), each followed
  by ImageNet-C and ImageNet-P evaluation.
* ``detection``: the ResNets of the paper's COCO table, trained with LRnorm, each followed by
  Faster / Mask R-CNN fine-tuning with the backbone methods the table lists for its head.
* ``landscape``: GAP and GCP LRnorm training of the two models whose probe settings are the
  paper's (:data:`gcpbench.landscape.probe.ETA_RANGES`), with the probe at the paper's interval.
* ``fgvc``: the zoo backbones of the published fine-grained table (ResNet-50, ResNet-101) x GAP /
  GCP, trained with LRnorm, each followed by ``gcpbench finetune`` on the table's three datasets
  (CUB-200-2011, FGVC-Aircraft, Stanford Cars; roots from ``--cub``, ``--aircraft``, ``--cars``).
* ``normalisations``: the extension paper's (TPAMI 2023) and DropCov's question, which
  normalisation gives which benefit: one architecture (ResNet-18, whose probe settings are the
  paper's) with GAP and every GCP normalisation (:data:`gcpbench.pooling.NORMS`) under LRnorm and
  LRfast, with the landscape probe, each followed by ImageNet-C and ImageNet-P.

The runs of one model and schedule have the same name in every spec, so sweeps into one folder
share their trainings: ``--paper detection`` after ``--paper imagenet`` only adds evaluations.
"""
from __future__ import annotations

from typing import Any

from gcpbench.errors import GcpbenchError
from gcpbench.models.registry import model_info, model_name
from gcpbench.sweep.spec import RunSpec, SweepSpec, make_run, merge_runs

PAPER_SPECS: tuple[str, ...] = ("imagenet", "robustness", "detection", "landscape", "fgvc", "normalisations")
NORMALISATION_ARCH = "resnet18"
# The paper's landscape figure: one ResNet (ResNet-18) and MobileNetV2, the families whose step
# sizes and probe interval are the paper's (ShuffleNetV2's are our extrapolation).
LANDSCAPE_ARCHS: tuple[str, ...] = ("resnet18", "mobilenetv2")


def _imagenet(train: dict[str, Any], data: str | None) -> tuple[list[RunSpec], list[str]]:
    from gcpbench.report.paper import paper_imagenet

    runs = []
    for row in paper_imagenet().itertuples():
        dim = None if row.gcp_dim is None or str(row.gcp_dim) == "<NA>" else int(row.gcp_dim)
        runs.append(make_run(model_name(row.arch, row.head, dim), row.schedule, 0, train, [], data))
    return runs, []


def _robustness(train: dict[str, Any], data: str | None) -> tuple[list[RunSpec], list[str]]:
    from gcpbench.report.paper import paper_robustness

    runs, pretrained = [], []
    for row in paper_robustness().itertuples():
        runs.append(make_run(model_name(row.arch, row.head), "LRnorm", 0, train, ["eval-c", "eval-p"], data))
        if "torchvision" in str(row.source_of_gap_model):
            pretrained.append(runs[-1].name)
    notes = [f"robustness: the paper evaluated torchvision's pretrained models for {', '.join(pretrained)}; this "
             "sweep evaluates its own LRnorm trainings (`gcpbench eval-c --ckpt` also takes torchvision weights)"]
    return runs, notes if pretrained else []


def _detection(train: dict[str, Any], data: str | None) -> tuple[list[RunSpec], list[str]]:
    from gcpbench.report.paper import paper_detection

    table = paper_detection()
    runs = []
    for backbone in dict.fromkeys(table["backbone"]):
        rows = table[table["backbone"] == backbone]
        for head in ("gap", "gcp"):
            pairs = dict.fromkeys((r.framework, r.method) for r in rows.itertuples() if (r.method == "gap") == (head == "gap"))
            evaluations = [f"detect:{framework}:{method}" for framework, method in pairs]
            runs.append(make_run(model_name(backbone, head), "LRnorm", 0, train, evaluations, data))
    notes = ["detection: the paper's GAP backbones are ImageNet (torchvision) weights; this sweep fine-tunes "
             "its own LRnorm GAP trainings"]
    return runs, notes


def _landscape(train: dict[str, Any], data: str | None) -> tuple[list[RunSpec], list[str]]:
    from gcpbench.landscape.probe import default_every

    runs = []
    for arch in LANDSCAPE_ARCHS:
        for head in ("gap", "gcp"):
            name = model_name(arch, head)
            probe = {"landscape_every": default_every(model_info(name).family), **train}
            runs.append(make_run(name, "LRnorm", 0, probe, [], data))
    return runs, ["landscape: `gcpbench report SWEEP` draws the figure from the runs' landscape.csv"]


def _fgvc(train: dict[str, Any], data: str | None) -> tuple[list[RunSpec], list[str]]:
    from gcpbench.models.registry import ARCHS
    from gcpbench.report.fgvc import PAPER_DATASETS
    from gcpbench.report.paper import paper_fgvc

    table = paper_fgvc()
    evaluations = [f"finetune:{PAPER_DATASETS[title]}" for title in dict.fromkeys(table["dataset"])]
    runs, missing = [], []
    for backbone in dict.fromkeys(table["backbone"]):
        arch = backbone.lower().replace("-", "")  # ResNet-50 -> resnet50
        if arch not in ARCHS:
            missing.append(backbone)
            continue
        for head in ("gap", "gcp"):
            runs.append(make_run(model_name(arch, head), "LRnorm", 0, train, evaluations, data))
    notes = [f"fgvc: {', '.join(missing)} has no zoo model; fine-tune one with `gcpbench finetune --model "
             "torchvision/vgg16_gcp --weights FILE`"] if missing else []
    return runs, notes


def _normalisations(train: dict[str, Any], data: str | None) -> tuple[list[RunSpec], list[str]]:
    from gcpbench.landscape.probe import default_every
    from gcpbench.pooling.registry import NORMS

    names = [model_name(NORMALISATION_ARCH, "gap")] + [model_name(NORMALISATION_ARCH, "gcp", 256, n) for n in NORMS]
    probe = {"landscape_every": default_every(model_info(names[0]).family), **train}
    runs = [make_run(name, schedule, 0, probe, ["eval-c", "eval-p"], data)
            for name in names for schedule in ("LRnorm", "LRfast")]
    return runs, [f"normalisations: {NORMALISATION_ARCH} with GAP and {len(NORMS)} GCP normalisations x LRnorm / "
                  "LRfast; `gcpbench report SWEEP` compares them (report/methods.md: one landscape band per method)"]


_BUILDERS = {"imagenet": _imagenet, "robustness": _robustness, "detection": _detection, "landscape": _landscape,
             "fgvc": _fgvc, "normalisations": _normalisations}


def paper_spec(names: list[str], train: dict[str, Any] | None = None, data: str | None = None) -> SweepSpec:
    """The built-in sweep of the paper's tables ``names`` (united when several are given).

    ``train`` adds `gcpbench train` options to every run (and to its name), ``data`` is the
    ImageNet root (None: the built-in synthetic set).
    """
    runs: list[RunSpec] = []
    notes: list[str] = []
    for name in names:
        if name not in _BUILDERS:
            raise GcpbenchError(f"--paper {name} is not a paper table; use one of {', '.join(PAPER_SPECS)}")
        built, extra = _BUILDERS[name](dict(train or {}), data)
        runs += built
        notes += extra
    return SweepSpec("paper-" + "-".join(names), merge_runs(runs), {}, notes)
