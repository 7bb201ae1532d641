"""Training / evaluation transforms of the paper."""
from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from gcpbench.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, eval_resize, eval_transform, normalize_only,
                                      train_transform, COLOR_JITTER)
from gcpbench.models.registry import FAMILIES, family_of
from gcpbench.errors import GcpbenchError


def kinds(compose: T.Compose) -> list[type]:
    return [type(t) for t in compose.transforms]


def test_eval_transform_is_resize_256_crop_224():
    transform = eval_transform(224)
    assert kinds(transform) == [T.Resize, T.CenterCrop, T.ToTensor, T.Normalize]
    assert transform.transforms[0].size == 256 and transform.transforms[1].size == (224, 224)
    assert transform(Image.new("RGB", (500, 375))).shape == (3, 224, 224)


def test_eval_transform_scales_for_small_images():
    assert eval_resize(224) == 256 and eval_resize(64) == 73 and eval_resize(32) == 37  # 64*256/224 = 73.14
    assert eval_transform(64).transforms[0].size == 73
    assert eval_transform(32, resize=32).transforms[0].size == 32
    with pytest.raises(GcpbenchError, match="smaller than the crop"):
        eval_transform(64, resize=60)


def test_normalisation_values_by_hand():
    image = Image.new("RGB", (4, 4), (255, 0, 128))
    out = normalize_only()(image)
    expected = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor(expected), rtol=0, atol=1e-6)
    assert out.shape == (3, 4, 4)  # no resize


def test_train_transform_per_family():
    resnet = train_transform("resnet", 224)
    assert kinds(resnet) == [T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize]
    assert resnet.transforms[0].size == (224, 224)
    shuffle = train_transform("shufflenetv2", 64)
    assert kinds(shuffle) == [T.RandomResizedCrop, T.RandomHorizontalFlip, T.ColorJitter, T.ToTensor, T.Normalize]
    jitter = shuffle.transforms[2]
    assert jitter.brightness == (0.6, 1.4) and jitter.contrast == (0.6, 1.4) and jitter.saturation == (0.6, 1.4)
    assert jitter.hue is None
    assert kinds(train_transform("mobilenetv2", 32)) == kinds(resnet)
    assert T.ColorJitter in kinds(train_transform(family_of("shufflenetv2_gcp"), 32))  # a zoo name's family
    assert shuffle(Image.new("RGB", (80, 70))).shape == (3, 64, 64)


def test_every_zoo_family_has_its_augmentation():
    assert set(COLOR_JITTER) == set(FAMILIES)


def test_unknown_family_is_a_one_line_error():
    with pytest.raises(GcpbenchError, match="unknown model family 'vgg16'"):
        train_transform("vgg16", 224)
