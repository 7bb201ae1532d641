"""timm / torchvision models in gcpbench: same weights -> same logits, the GCP head's parameter
count, training, resuming and evaluating with the model's own preprocessing. Tiny models, CPU."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gcpbench.data.synthetic import make_classification_set
from gcpbench.errors import GcpbenchError
from gcpbench.models import build, load_model, save_checkpoint
from gcpbench.models.resolve import resolve_model
from gcpbench.train import TrainOptions, train

from robustness_tiny import CLASSES, tiny_images, write_tree

VIT = dict(img_size=32, patch_size=8)  # a 4x4-token ViT-Tiny: tiny and fast


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_classification_set(tmp_path_factory.mktemp("data") / "tiny", num_classes=4, image_size=64,
                                   train_per_class=8, val_per_class=4, seed=0)


def test_resnet18_from_one_weights_file_gives_identical_logits(tmp_path) -> None:
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=1000).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a missed buffer would show
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    pth, safetensors = tmp_path / "resnet18.pth", tmp_path / "resnet18.safetensors"
    torch.save(reference.state_dict(), pth)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(safetensors))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        tv = resolve_model(model="torchvision/resnet18", weights=pth)
        zoo = resolve_model(model="resnet18_gap", weights=pth)
        tm = resolve_model(model="timm/resnet18", weights=safetensors)
        logits = {r.name: r.model.eval()(x) for r in (tv, zoo, tm)}
    assert tv.load_report.initialised == [] and tm.load_report.initialised == [] and len(tv.load_report.loaded) == 122
    assert tv.model.num_classes == tm.model.num_classes == 1000  # read from the file's classifier
    assert torch.equal(logits["torchvision/resnet18"], expected)
    assert torch.equal(logits["resnet18_gap"], expected)
    assert torch.allclose(logits["timm/resnet18"], expected, atol=1e-5, rtol=0)  # timm's own blocks, same keys


def _independent_count(name: str, dim: int, classes: int, **kwargs) -> int:
    """Backbone without its head (timm's num_classes=0, head modules left out) + reduction + BN + Linear."""
    import timm

    net = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    backbone = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("head."))
    c = net.num_features
    return backbone + c * dim + 2 * dim + (dim * (dim + 1) // 2 + 1) * classes


@pytest.mark.parametrize("name,kwargs,size", [("convnext_atto", {}, 64), ("vit_tiny_patch16_224", VIT, 32)])
def test_gcp_head_parameters_and_a_few_training_steps(tiny, name, kwargs, size) -> None:
    """ConvNeXt at 64 px: a 2x2 last map (M = 4); ViT at 32 px: 4x4 patch tokens (M = 16)."""
    from gcpbench.data.folders import image_folder, make_loader
    from gcpbench.data.transforms import train_transform

    torch.manual_seed(0)
    model = build(f"timm/{name}", head="gcp", gcp_dim=16, num_classes=4, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == _independent_count(name, 16, 4, **kwargs)
    assert model.fc.in_features == 136 and model.layer_reduce.out_channels == 16
    loader = make_loader(image_folder(tiny / "train", train_transform("resnet", size)), 8, shuffle=True, workers=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for step, (images, targets) in zip(range(3), loader):
        loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    after = model.state_dict()
    stem = f"backbone.{model.stem_name}.weight"
    assert not torch.equal(before[stem], after[stem]) and not torch.equal(before["fc.weight"], after["fc.weight"])


def test_vit_patch_tokens_are_the_positions() -> None:
    model = build("timm/vit_tiny_patch16_224", head="gcp", gcp_dim=8, num_classes=3, **VIT).eval()
    x = torch.randn(2, 3, 32, 32)
    tokens = model.backbone.forward_features(x)
    assert tokens.shape == (2, 17, 192) and model.token_prefix == 1  # class token + 4x4 patches
    assert torch.equal(model.features(x)[..., 0], tokens[:, 1:].transpose(1, 2))


def test_finetuning_a_gap_file_into_a_gcp_head_reports_what_it_did(tmp_path) -> None:
    gap = build("timm/convnext_atto", num_classes=1000)
    weights = tmp_path / "atto.safetensors"
    save_file({k: v.contiguous() for k, v in gap.backbone.state_dict().items()}, str(weights))
    model = build("timm/convnext_atto", head="gcp", gcp_dim=8, num_classes=5, weights=weights)
    report = model.load_report
    assert set(report.initialised) == {"layer_reduce.weight", "layer_reduce_bn.weight", "layer_reduce_bn.bias",
                                       "layer_reduce_bn.running_mean", "layer_reduce_bn.running_var",
                                       "fc.weight", "fc.bias"}  # num_batches_tracked: not reported
    assert set(report.ignored) == {"head.norm.weight", "head.norm.bias", "head.fc.weight", "head.fc.bias"}
    assert torch.equal(model.backbone.stem[0].weight, gap.backbone.stem[0].weight)
    assert f"initialised {len(report.initialised)} (" in report.describe()
    other = tmp_path / "r18.pth"
    torch.save(build("torchvision/resnet18").backbone.state_dict(), other)
    with pytest.raises(GcpbenchError, match="unexpected key 'conv1.weight'"):
        build("timm/convnext_atto", head="gcp", weights=other)


def test_names_and_suggestions() -> None:
    with pytest.raises(GcpbenchError, match="did you mean 'timm/convnext_atto'"):
        build("timm/convnext_atoo")
    with pytest.raises(GcpbenchError, match="did you mean 'torchvision/resnet18'"):
        build("torchvision/resnet81")
    assert build("torchvision/resnet18_gcp_s1", num_classes=2).backbone.layer4[0].conv1.stride == (1, 1)
    with pytest.raises(GcpbenchError, match="needs a ResNet"):
        build("timm/convnext_atto", head="gcp", last_stride_one=True)


def test_timm_gcp_checkpoint_trains_resumes_and_evaluates(tiny, tmp_path, monkeypatch, run_cli) -> None:
    import gcpbench.train.trainer as trainer

    monkeypatch.chdir(tmp_path)  # the probe's run directory goes under ./runs
    opts = dict(arch="timm/convnext_atto", head="gcp", gcp_dim=16, data=str(tiny), out=str(tmp_path / "run"),
                epochs=2, batch_size=8, workers=0, quiet=True, deterministic=True)
    real_epoch = trainer.train_one_epoch

    def interrupted(s, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(s, epoch)

    monkeypatch.setattr(trainer, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(TrainOptions(**opts))
    monkeypatch.setattr(trainer, "train_one_epoch", real_epoch)
    run = train(TrainOptions(resume=opts["out"], quiet=True))
    config = json.loads(run.config.read_text())
    assert (config["model"], config["arch"], config["family"]) == ("timm/convnext_atto_gcp16", "timm/convnext_atto", "resnet")
    assert [json.loads(line)["epoch"] for line in run.metrics_jsonl.read_text().splitlines()] == [1, 2]
    model, checkpoint = load_model(run.last_checkpoint)
    assert model.zoo_name == "timm/convnext_atto_gcp16" and checkpoint["epoch"] == 2
    code, out, err = run_cli("eval-imagenet", "--ckpt", str(run.last_checkpoint), "--data", str(tiny), "--workers", "0")
    assert code == 0, err
    result = json.loads((run.path / "eval" / "imagenet.json").read_text())
    assert result["model"] == "timm/convnext_atto_gcp16" and result["images"] == 16 and result["image_size"] == 64
    assert result["preprocessing"]["interpolation"] == "bicubic" and "timm pretrained_cfg" in err
    # the landscape probe cuts the timm model after its generic stem; its loss is the train-mode loss
    code, out, err = run_cli("landscape", "--ckpt", str(run.last_checkpoint), "--data", str(tiny), "--batch-size", "8",
                             "--num-eta", "3", "--device", "cpu", "--quiet", "--out", str(tmp_path / "l.png"))
    assert code == 0, err
    from gcpbench.landscape.recorder import read_landscape
    from gcpbench.landscape.single import probe_batch
    from gcpbench.models.preprocess import for_model

    images, targets = probe_batch(tiny / "train", for_model(model).at_size(64).transform(), 8, 0)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model.train()(images), targets).item()
    from gcpbench.identity import fingerprint

    default = f"landscape_timm-convnext_atto_gcp16_last_{fingerprint(run.last_checkpoint)[:8]}"
    rows = read_landscape(tmp_path / "runs" / default / "landscape.csv")
    assert rows["train_loss"].iloc[0] == pytest.approx(loss, rel=1e-5) and rows["num_eta"].iloc[0] == 3
    code, out, err = run_cli("report", "--ckpt", str(run.last_checkpoint), "--out", str(tmp_path / "report"), "--quiet")
    assert code == 0, err
    assert "timm/convnext_atto" in (tmp_path / "report" / "report.md").read_text()


def test_eval_c_on_a_timm_model_uses_its_pretrained_cfg(tmp_path, run_cli) -> None:
    from timm.data import resolve_data_config

    torch.manual_seed(0)
    model = build("timm/vit_tiny_patch16_224", num_classes=len(CLASSES), **VIT)
    weights = save_checkpoint(tmp_path / "vit.pt", model, model.zoo_name)
    images = tiny_images()
    for severity in (1, 2):
        write_tree(tmp_path / "c" / "gaussian_noise" / str(severity), images, ext="JPEG")
    code, out, err = run_cli("eval-c", "--model", "timm/vit_tiny_patch16_224", "--weights", str(weights),
                             "--data", str(tmp_path / "c"), "--corruptions", "gaussian_noise", "--severities", "1,2",
                             "--clean-error", "0.5", "--workers", "0", "--device", "cpu", "--out", str(tmp_path / "run"),
                             "--json")
    assert code == 0, err
    summary = json.loads(out)
    cfg = resolve_data_config({}, model=model.backbone)
    prep = summary["preprocessing"]
    assert cfg["mean"] == (0.5, 0.5, 0.5) and tuple(prep["mean"]) == cfg["mean"] and tuple(prep["std"]) == cfg["std"]
    assert prep["interpolation"] == cfg["interpolation"] and prep["crop_pct"] == pytest.approx(cfg["crop_pct"], abs=0.02)
    # the errors follow from that normalisation, computed here image by image
    net = model.eval()
    wrong = 0
    for label, wnid in enumerate(CLASSES):
        for path in sorted((tmp_path / "c" / "gaussian_noise" / "1" / wnid).iterdir()):
            from PIL import Image

            x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float()[None] / 255
            with torch.no_grad():
                wrong += int(net((x - 0.5) / 0.5).argmax() != label)
    assert summary["errors"]["gaussian_noise"]["1"] == pytest.approx(wrong / sum(len(v) for v in images.values()))


def test_cli_zoo_lists_timm_names_with_params(run_cli) -> None:
    code, out, err = run_cli("zoo", "--source", "timm", "--filter", "convnext_atto*", "--format", "csv")
    assert code == 0, err
    rows = {line.split(",")[0]: line.split(",") for line in out.strip().splitlines()[1:]}
    import timm

    expected = sum(p.numel() for p in timm.create_model("convnext_atto", pretrained=False).parameters())
    assert "timm/convnext_atto" in rows and int(rows["timm/convnext_atto"][1]) == expected
    code, out, err = run_cli("eval-c", "--model", "timm/convnext_atto")
    assert code == 2 and "needs --weights" in err
    code, out, err = run_cli("eval-p", "--model", "timm/convnext_atoo", "--weights", "missing.pt")
    assert code == 2 and "did you mean 'timm/convnext_atto'" in err
    code, out, err = run_cli("train", "convnext_atto")
    assert code == 2 and "did you mean 'timm/convnext_atto'" in err


def test_generic_stem_split_equals_the_network_cut_by_hand() -> None:
    """torchvision's ResNet-18: the stem found generically is conv1; the rest, written out here."""
    torch.manual_seed(0)
    model = build("torchvision/resnet18", num_classes=3).eval()
    net = model.backbone
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = model.forward_stem(x)
        rest = net.maxpool(net.relu(net.bn1(y)))
        rest = net.layer4(net.layer3(net.layer2(net.layer1(rest))))
        expected = net.fc(torch.flatten(net.avgpool(rest), 1))
        assert model.stem_name == "conv1" and torch.equal(y, net.conv1(x))
        assert torch.equal(model.forward_from_stem(y), expected)


def test_a_one_position_feature_map_is_refused() -> None:
    model = build("timm/convnext_atto", head="gcp", gcp_dim=8, num_classes=2)
    with pytest.raises(GcpbenchError, match="single position"):
        model(torch.randn(2, 3, 32, 32))


def test_released_isqrt_cov_checkpoint_loads_into_torchvision_resnet_with_stride_one(tmp_path) -> None:
    """A .pth.tar in the original form (DataParallel keys, epoch/arch/state_dict) fills the
    torchvision ResNet-18 + GCP head exactly like the zoo's resnet18_gcp."""
    torch.manual_seed(0)
    zoo = build("resnet18_gcp", num_classes=3).eval()
    with torch.no_grad():
        zoo.layer_reduce_bn.running_var.uniform_(0.5, 1.5)
    released = tmp_path / "mpncovresnet18.pth.tar"
    torch.save({"epoch": 1, "arch": "resnet18_mpncov", "best_prec1": 0.0,
                "state_dict": {f"module.{k}": v for k, v in zoo.state_dict().items()}}, released)
    resolved = resolve_model(model="torchvision/resnet18_gcp_s1", weights=released)
    assert resolved.load_report.initialised == [] and resolved.model.num_classes == 3
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(resolved.model.eval()(x), zoo(x), atol=1e-6, rtol=0)


def test_train_fine_tunes_from_a_gap_weights_file(tiny, tmp_path, run_cli) -> None:
    gap = build("timm/convnext_atto", num_classes=1000)
    weights = tmp_path / "atto.safetensors"
    save_file({k: v.contiguous() for k, v in gap.backbone.state_dict().items()}, str(weights))
    code, out, err = run_cli("train", "timm/convnext_atto", "--head", "gcp", "--gcp-dim", "8", "--weights", str(weights),
                             "--data", str(tiny), "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "8",
                             "--workers", "0")  # the load report is an info line: shown without --quiet
    assert code == 0, err
    assert "initialised 7 (layer_reduce.weight" in out + err and "ignored 4 from the file" in out + err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["init_weights"] == str(weights.resolve()) and config["model"] == "timm/convnext_atto_gcp8"
    code, out, err = run_cli("train", "timm/convnext_atto", "--weights", str(tmp_path / "nope.pth"), "--data", str(tiny),
                             "--out", str(tmp_path / "run2"))
    assert code == 2 and "does not exist" in err


def test_benchmark_images_follow_the_models_geometry(tmp_path) -> None:
    """ImageNet-C loading with a timm model's preprocessing: corrupted 224 px images are resized to
    its input size with its interpolation, clean ones (eval-imagenet's path, shared by eval-c's
    clean error) resized and centre-cropped its way."""
    from PIL import Image

    from gcpbench.models.preprocess import Preprocessing
    from gcpbench.robustness.loading import load_image

    rng = np.random.default_rng(0)
    corrupted, clean = tmp_path / "c.png", tmp_path / "clean.png"
    Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(corrupted)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(clean)
    prep = Preprocessing(256, 288, "bicubic", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "test")

    def by_hand(image: Image.Image) -> torch.Tensor:
        return (torch.from_numpy(np.array(image)).permute(2, 0, 1).float()[None] / 255 - 0.5) / 0.25

    expected = by_hand(Image.open(corrupted).convert("RGB").resize((256, 256), Image.BICUBIC))
    assert torch.allclose(load_image(corrupted, prep), expected, atol=1e-6)
    resized = Image.open(clean).convert("RGB").resize((384, 288), Image.BICUBIC)  # short side 300 -> 288
    expected = by_hand(resized.crop((64, 16, 320, 272)))
    assert torch.allclose(prep.transform()(Image.open(clean).convert("RGB"))[None], expected, atol=1e-6)


def test_torchvision_resnet50_with_gcp_and_stride_one_is_the_papers_model() -> None:
    """Same parameters and multiply-adds as the zoo's resnet50_gcp (the original definition)."""
    from gcpbench.models.complexity import complexity

    ours, zoo = complexity("torchvision/resnet50_gcp_s1"), complexity("resnet50_gcp")
    assert ours["params"] == zoo["params"] and ours["gflops"] == pytest.approx(zoo["gflops"], rel=1e-9)
