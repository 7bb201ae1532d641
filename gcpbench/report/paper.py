"""The paper's own numbers (ImageNet, robustness, COCO detection, fine-grained transfer), read from package data.

The CSVs in ``gcpbench/reference_data/`` name architectures as the paper does (``ResNet18``,
``MobileNetV2``, ``ShuffleNetV2``); :func:`paper_architecture` maps a zoo arch to that name.
"""
from __future__ import annotations

import functools
import io
from importlib import resources

import pandas as pd

# First epoch at which GCP + LRadju reaches GAP + LRnorm's final top-1 (the paper's text).
PAPER_MATCHING_EPOCH: dict[str, int] = {
    "mobilenetv2": 68,
    "shufflenetv2": 78,
    "resnet18": 32,
    "resnet34": 38,
    "resnet50": 40,
    "resnet101": 41,
}

# Human-readable architecture names for tables and plots.
DISPLAY_NAMES: dict[str, str] = {
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
    "resnet101": "ResNet-101",
    "mobilenetv2": "MobileNetV2",
    "shufflenetv2": "ShuffleNetV2",
}


def _read(name: str) -> pd.DataFrame:
    text = resources.files("gcpbench").joinpath("reference_data", name).read_text()
    return pd.read_csv(io.StringIO(text))


def paper_dropcov() -> pd.DataFrame:
    """DropCov's (NeurIPS 2022) and the TPAMI 2023 extension's published ImageNet top-1:
    model, method, framework, top1, params_m, gflops, source."""
    return _read("paper_dropcov.csv")


def display_name(arch: str) -> str:
    """``resnet18`` -> ``ResNet-18``; unknown names are returned unchanged."""
    return DISPLAY_NAMES.get(arch, arch)


@functools.lru_cache(maxsize=None)
def _architecture_names() -> dict[str, str]:
    names = pd.concat([_read("paper_imagenet.csv")["architecture"], _read("paper_robustness.csv")["model"]])
    return {name.lower(): name for name in names.unique()}


def paper_architecture(arch: str) -> str | None:
    """The paper CSVs' name of a zoo arch (``resnet18`` -> ``ResNet18``), None if absent."""
    return _architecture_names().get(arch.lower())


def _with_zoo_arch(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "arch", frame[column].str.lower())
    return frame


@functools.lru_cache(maxsize=None)
def _imagenet() -> pd.DataFrame:
    frame = _with_zoo_arch(_read("paper_imagenet.csv"), "architecture")
    frame["gcp_dim"] = frame["gcp_dim"].astype("Int64")
    return frame


@functools.lru_cache(maxsize=None)
def _robustness() -> pd.DataFrame:
    return _with_zoo_arch(_read("paper_robustness.csv"), "model")


@functools.lru_cache(maxsize=None)
def _detection() -> pd.DataFrame:
    return _read("paper_detection.csv")


def paper_imagenet() -> pd.DataFrame:
    """arch, architecture, head, schedule, gcp_dim (Int64, <NA> for GAP), top1, top5 (percent)."""
    return _imagenet().copy()


def paper_robustness() -> pd.DataFrame:
    """arch, model, head, source_of_gap_model, mCE, relative_mCE, mFP, mT5D (percent; GCP = 256)."""
    return _robustness().copy()


def paper_detection() -> pd.DataFrame:
    """framework, backbone, method, task (bbox|segm), AP, AP50, AP75, APs, APm, APl (COCO val)."""
    return _detection().copy()


@functools.lru_cache(maxsize=None)
def _fgvc() -> pd.DataFrame:
    return _read("paper_fgvc.csv")


def paper_fgvc() -> pd.DataFrame:
    """backbone (VGG-D, ResNet-50, ResNet-101), gcp_dim, representation, dataset, top1_paper,
    top1_authors_reproduction (percent; fast-MPN-COV README), source."""
    return _fgvc().copy()


def paper_matching_epoch(arch: str) -> int | None:
    """The paper's matching epoch of ``arch`` (None when the paper gives none)."""
    return PAPER_MATCHING_EPOCH.get(arch.lower())
