"""Detection backbone (GAP / GCP_D / GCP_M), weight loading, configs, synthetic COCO set (fast)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("mmdet")
pytest.importorskip("mmcv.ops")
pytestmark = pytest.mark.mmdet

from gcpbench.data.synthetic_coco import CATEGORIES, make_detection_set  # noqa: E402
from gcpbench.detection import GCPResNet  # noqa: E402
from gcpbench.detection.config import BACKBONES, build_config, config_file, parse_backbone  # noqa: E402
from gcpbench.errors import GcpbenchError  # noqa: E402
from gcpbench.models import build, save_checkpoint  # noqa: E402

BASE_COLOURS = np.array([[200, 60, 50], [60, 190, 70], [60, 90, 210]], dtype=float)  # rectangle, triangle, ellipse
HEAD_KEYS = ("layer_reduce.weight", "layer_reduce_bn.weight", "layer_reduce_bn.running_var", "fc.weight", "fc.bias")




@pytest.fixture(scope="module")
def gcp18():
    """A gcpbench ResNet-18 GCP with non-trivial BN statistics (5 classes)."""
    torch.manual_seed(0)
    model = build("resnet18_gcp", num_classes=5)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture()
def gcp18_file(tmp_path, gcp18):
    return save_checkpoint(tmp_path / "r18_gcp.pt", gcp18, "resnet18_gcp", epoch=3)


@pytest.mark.parametrize("mode", ["gap", "gcp_d", "gcp_m"])
def test_every_mode_gives_c2_to_c5_at_strides_4_to_32(mode: str) -> None:
    backbone = GCPResNet(depth=18, mode=mode).eval()
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]
    layer4_stride = backbone.layer4[0].conv1.stride
    assert layer4_stride == ((1, 1) if mode == "gcp_m" else (2, 2))


def test_gcp_m_is_the_trained_stride_one_network_max_pooled() -> None:
    backbone = GCPResNet(depth=18, mode="gcp_m").eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        y = backbone.maxpool(backbone.relu(backbone.norm1(backbone.conv1(x))))
        y = backbone.layer4(backbone.layer3(backbone.layer2(backbone.layer1(y))))
        assert y.shape[-1] == 96 // 16
        expected = F.max_pool2d(y, kernel_size=2, stride=2)
        assert torch.equal(backbone(x)[-1], expected)


def test_gcp_m_c5_matches_gcp_d_size_on_odd_inputs() -> None:
    x = torch.randn(1, 3, 200, 232)  # C4 13 x 15
    with torch.no_grad():
        d = GCPResNet(depth=18, mode="gcp_d").eval()(x)[-1]
        m = GCPResNet(depth=18, mode="gcp_m").eval()(x)[-1]
    assert d.shape == m.shape == (1, 512, 7, 8)


def test_gcp_checkpoint_lands_in_the_backbone_and_head_is_dropped(gcp18, gcp18_file) -> None:
    backbone = GCPResNet(depth=18, mode="gcp_m", init_cfg=dict(type="Pretrained", checkpoint=str(gcp18_file)))
    backbone.init_weights()
    source = gcp18.state_dict()
    state = backbone.state_dict()
    assert set(state) == {k for k in source if not k.startswith(("fc.", "layer_reduce"))}
    for key, tensor in state.items():
        assert torch.equal(tensor, source[key]), key
    assert not any(k in state for k in HEAD_KEYS)
    # the GCP network's own stride-1 body, max-pooled, is GCP_M's C5
    backbone.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = F.max_pool2d(gcp18.forward_body(gcp18.forward_stem(x)), 2)
        assert torch.allclose(backbone(x)[-1], expected, atol=1e-5)


def test_pretrained_argument_and_original_and_torchvision_layouts(tmp_path, gcp18) -> None:
    original = tmp_path / "original.pth.tar"
    torch.save({"epoch": 90, "arch": "resnet18_mpncov", "state_dict": {f"module.{k}": v for k, v in gcp18.state_dict().items()}}, original)
    backbone = GCPResNet(depth=18, mode="gcp_d", pretrained=str(original))
    backbone.init_weights()
    assert torch.equal(backbone.layer3[1].conv2.weight, gcp18.layer3[1].conv2.weight)
    import torchvision

    tv = torchvision.models.resnet18(num_classes=10)
    tv_state = {k: v for k, v in tv.state_dict().items() if not k.endswith("num_batches_tracked")}  # old torchvision files
    torch.save(tv_state, tmp_path / "tv.pth")
    gap = GCPResNet(depth=18, mode="gap", init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "tv.pth")))
    gap.init_weights()
    assert torch.equal(gap.conv1.weight, tv.conv1.weight) and torch.equal(gap.bn1.running_var, tv.bn1.running_var)


def test_mmdet_resnet50_keys_equal_gcpbench_resnet50_gcp_backbone_keys() -> None:
    with torch.device("meta"):
        backbone = GCPResNet(depth=50, mode="gcp_m")
        zoo = build("resnet50_gcp")
    zoo_keys = {k: tuple(v.shape) for k, v in zoo.state_dict().items() if not k.startswith(("fc.", "layer_reduce"))}
    assert {k: tuple(v.shape) for k, v in backbone.state_dict().items()} == zoo_keys


def _error(backbone: GCPResNet) -> str:
    with pytest.raises(GcpbenchError) as info:
        backbone.init_weights()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_wrong_or_mismatched_checkpoints_fail_in_one_line(tmp_path, gcp18) -> None:
    r34 = save_checkpoint(tmp_path / "r34.pt", build("resnet34_gcp", num_classes=5), "resnet34_gcp")
    assert "hold a 'resnet34_gcp'" in _error(GCPResNet(depth=18, mode="gcp_d", pretrained=str(r34)))

    state = dict(gcp18.state_dict())
    del state["layer4.1.bn2.running_var"]
    torch.save(state, tmp_path / "missing.pth")
    assert "missing backbone tensor 'layer4.1.bn2.running_var'" in _error(GCPResNet(depth=18, pretrained=str(tmp_path / "missing.pth")))

    state = dict(gcp18.state_dict())
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 1, 1)
    torch.save(state, tmp_path / "shape.pth")
    message = _error(GCPResNet(depth=18, pretrained=str(tmp_path / "shape.pth")))
    assert "'layer2.0.conv1.weight' has shape (128, 64, 1, 1)" in message and "(128, 64, 3, 3)" in message

    mobile = build("mobilenetv2_gcp", num_classes=5)
    save_checkpoint(tmp_path / "mb.pt", mobile, "mobilenetv2_gcp")
    assert "hold a 'mobilenetv2_gcp'" in _error(GCPResNet(depth=18, pretrained=str(tmp_path / "mb.pt")))
    torch.save(mobile.state_dict(), tmp_path / "mb_plain.pth")
    message = _error(GCPResNet(depth=18, pretrained=str(tmp_path / "mb_plain.pth")))
    assert "missing backbone tensor 'conv1.weight'" in message and "looks like a 'mobilenetv2_gcp'" in message
    assert "not found" in _error(GCPResNet(depth=18, pretrained=str(tmp_path / "nope.pth")))


def test_backbone_names_parse_and_unknown_ones_suggest() -> None:
    assert parse_backbone("resnet50_gcp_m").depth == 50 and parse_backbone("ResNet101_GCP_D").mode == "gcp_d"
    assert len(BACKBONES) == 12
    with pytest.raises(GcpbenchError, match="did you mean 'resnet50_gcp_m'"):
        parse_backbone("resnet50_gcpm")
    with pytest.raises(GcpbenchError, match="resnet"):
        parse_backbone("resnet152_gap")


@pytest.mark.parametrize("framework", ["faster_rcnn", "mask_rcnn"])
def test_every_config_inherits_mmdet_and_sets_the_backbone(tmp_path, framework: str) -> None:
    from mmengine.config import Config

    for name in BACKBONES:
        backbone = parse_backbone(name)
        if backbone.depth < 50:
            continue
        path = config_file(framework, backbone)
        assert "_base_" in path.read_text() and "dict(backbone=dict(" in path.read_text()
        cfg = Config.fromfile(str(path))
        bb = cfg.model.backbone
        assert (bb.type, bb.depth, bb.mode, bb.frozen_stages, bb.norm_eval) == ("GCPResNet", backbone.depth, backbone.mode, 1, True)
        expected = f"torchvision://{backbone.arch}" if backbone.mode == "gap" else f"checkpoints/{backbone.arch}_gcp.pth"
        assert bb.init_cfg.checkpoint == expected
        assert cfg.model.neck.in_channels == [256, 512, 1024, 2048]
        assert cfg.train_cfg.max_epochs == 12 and cfg.optim_wrapper.optimizer.lr == 0.02
        assert ("mask_head" in cfg.model.roi_head) == (framework == "mask_rcnn")


def test_build_config_for_resnet18_on_synthetic_data_with_max_iters(tmp_path) -> None:
    cfg = build_config("mask_rcnn", "resnet18_gcp_m", work_dir=tmp_path / "run", synthetic_root=tmp_path / "coco",
                       weights="none", max_iters=12)
    assert cfg.model.backbone.depth == 18 and cfg.model.backbone.init_cfg is None
    assert cfg.model.neck.in_channels == [64, 128, 256, 512]
    assert cfg.model.roi_head.bbox_head.num_classes == cfg.model.roi_head.mask_head.num_classes == len(CATEGORIES)
    assert dict(cfg.train_cfg) == {"type": "IterBasedTrainLoop", "max_iters": 12, "val_interval": 12}  # no max_epochs leaks
    steps = {s.type: s for s in cfg.param_scheduler}
    assert steps["MultiStepLR"].milestones == [8, 11] and not steps["MultiStepLR"].by_epoch and steps["LinearLR"].end == 12 // 5
    assert cfg.val_evaluator.ann_file == str(tmp_path / "coco") + "/annotations/instances_val2017.json"
    assert cfg.train_dataloader.dataset.metainfo["classes"] == CATEGORIES
    assert all(t["scale"] == (128, 128) for t in cfg.train_dataloader.dataset.pipeline if t["type"] == "Resize")
    assert cfg.train_dataloader.num_workers == 0 and cfg.auto_scale_lr.enable

    epochs = build_config("faster_rcnn", "resnet34_gap", work_dir=tmp_path, data_root=tmp_path / "real", epochs=3)
    assert epochs.model.backbone.init_cfg.checkpoint == "torchvision://resnet34"
    assert epochs.train_cfg.max_epochs == 3 and [s.milestones for s in epochs.param_scheduler if s.type == "MultiStepLR"] == [[2]]
    assert epochs.train_dataloader.dataset.data_root == str(tmp_path / "real") + "/"
    assert epochs.model.roi_head.bbox_head.num_classes == 80
    with pytest.raises(GcpbenchError, match="either --epochs or --max-iters"):
        build_config("faster_rcnn", "resnet18_gap", work_dir=tmp_path, synthetic_root=tmp_path, epochs=1, max_iters=1)
    with pytest.raises(GcpbenchError, match="did you mean 'mask_rcnn'"):
        build_config("mask_rnn", "resnet18_gap", work_dir=tmp_path, synthetic_root=tmp_path)


def test_configs_come_from_the_package_and_a_users_own_config_file_works(tmp_path) -> None:
    import gcpbench

    packaged = config_file("faster_rcnn", parse_backbone("resnet50_gap"))
    assert packaged.parent == Path(gcpbench.__file__).parent / "configs" / "detection"
    mine = tmp_path / "my_faster_rcnn.py"
    mine.write_text(f"_base_ = {str(packaged)!r}\nmodel = dict(backbone=dict(frozen_stages=2))\n"
                    "optim_wrapper = dict(optimizer=dict(lr=0.01))\n")
    cfg = build_config("faster_rcnn", "resnet18_gap", work_dir=tmp_path / "run", synthetic_root=tmp_path / "coco",
                       weights="none", max_iters=2, config=mine)
    assert cfg.filename == str(mine)
    assert cfg.model.backbone.frozen_stages == 2 and cfg.optim_wrapper.optimizer.lr == 0.01  # the user's settings
    assert cfg.model.backbone.depth == 18 and cfg.train_cfg.max_iters == 2  # the command line's on top
    assert config_file("faster_rcnn", parse_backbone("resnet18_gap"), mine) == mine
    with pytest.raises(GcpbenchError, match="is not an mmdetection config file"):
        config_file("faster_rcnn", parse_backbone("resnet18_gap"), tmp_path / "missing.py")


def test_synthetic_coco_set_is_valid_coco_and_deterministic(tmp_path) -> None:
    from pycocotools.coco import COCO

    root = make_detection_set(tmp_path / "a", num_train=4, num_val=2, image_size=96, seed=3)
    make_detection_set(tmp_path / "b", num_train=4, num_val=2, image_size=96, seed=3)
    for split, count in (("train", 4), ("val", 2)):
        ann = root / "annotations" / f"instances_{split}2017.json"
        assert ann.read_bytes() == (tmp_path / "b" / "annotations" / ann.name).read_bytes()
        coco = COCO(str(ann))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CATEGORIES)
        assert len(coco.getImgIds()) == count and len(list((root / f"{split}2017").glob("*.jpg"))) == count
        for a in coco.loadAnns(coco.getAnnIds()):
            x, y, w, h = a["bbox"]
            assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96 and w >= 8 and h >= 8
            mask = coco.annToMask(a)
            assert abs(mask.sum() - a["area"]) <= 0.15 * a["area"]
            ys, xs = mask.nonzero()
            assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
    with pytest.raises(GcpbenchError, match="not empty"):
        make_detection_set(root)
    assert json.loads((root / "gcpbench_synthetic.json").read_text())["task"] == "detection"


def test_without_data_the_cached_synthetic_set_is_used_and_announced(tmp_path, monkeypatch) -> None:
    from gcpbench.detection.runner import _dataset

    monkeypatch.setenv("GCPBENCH_CACHE", str(tmp_path))
    said = []
    label, coco_root, synthetic_root = _dataset(None, said.append)
    assert (label, coco_root, synthetic_root) == ("synthetic", None, tmp_path / "synthetic" / "coco")
    assert (synthetic_root / "annotations" / "instances_val2017.json").is_file() and "synthetic" in said[0]
    assert _dataset(synthetic_root, said.append) == ("synthetic", None, synthetic_root)  # --data on a synthetic tree
    with pytest.raises(GcpbenchError, match="COCO"):
        _dataset(tmp_path / "not_coco", said.append)


def test_cfg_options_merge_last_as_mmdetections_tools_do(tmp_path) -> None:
    from gcpbench.detection.config import parse_cfg_options

    pairs = ["optim_wrapper.optimizer.lr=0.005", "train_cfg.val_interval=2", "model.rpn_head.anchor_generator.ratios=[0.5,1.0]"]
    options = parse_cfg_options(pairs)
    assert options == {"optim_wrapper.optimizer.lr": 0.005, "train_cfg.val_interval": 2,
                       "model.rpn_head.anchor_generator.ratios": [0.5, 1.0]}
    cfg = build_config("faster_rcnn", "resnet34_gap", work_dir=tmp_path, data_root=tmp_path / "real", epochs=3,
                       cfg_options=options)
    assert cfg.optim_wrapper.optimizer.lr == 0.005 and cfg.train_cfg.val_interval == 2
    assert list(cfg.model.rpn_head.anchor_generator.ratios) == [0.5, 1.0]
    assert cfg.train_cfg.max_epochs == 3 and cfg.work_dir == str(tmp_path)  # gcpbench's own options still hold
    with pytest.raises(GcpbenchError, match="--cfg-options work_dir: gcpbench sets it; use --work-dir"):
        build_config("faster_rcnn", "resnet34_gap", work_dir=tmp_path, data_root=tmp_path, cfg_options={"work_dir": "x"})
    with pytest.raises(GcpbenchError, match="KEY=VALUE"):
        parse_cfg_options(["lr"])


def test_detect_cli_takes_cfg_options_as_mmdetection_does(run_cli, tmp_path) -> None:
    code, out, err = run_cli("detect", "--framework", "faster_rcnn", "--backbone", "resnet18_gap", "--work-dir",
                             str(tmp_path / "w"), "--cfg-options", "work_dir=/elsewhere", "train_cfg.val_interval=2")
    assert code == 2 and "--cfg-options work_dir: gcpbench sets it" in err and err.count("\n") == 1
    code, out, err = run_cli("detect", "--framework", "faster_rcnn", "--backbone", "resnet18_gap", "stray=1")
    assert code == 2 and "KEY=VALUE pairs follow --cfg-options" in err
