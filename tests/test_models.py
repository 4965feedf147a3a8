import copy

import pytest
import torch
from torch import nn

from lesson_utils.models import TinyResNet, count_parameters, freeze, unfreeze


def test_backbone_head_split_and_shapes():
    model = TinyResNet(7, widths=(8, 16, 24))
    x = torch.randn(5, 3, 20, 20)
    features = model.backbone(x)
    assert features.shape == (5, 24) and model.feature_dim == 24
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 7
    assert torch.allclose(model(x), model.head(features))


def test_default_size_matches_the_field_notes():
    assert 70_000 < count_parameters(TinyResNet(10)) < 90_000


def test_in_channels_and_shape_errors():
    model = TinyResNet(3, in_channels=1)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, H, W\)"):
        model(torch.zeros(2, 3, 16, 16))


@pytest.mark.parametrize("kwargs,match", [({"num_classes": 0}, "num_classes"),
                                          ({"num_classes": 3, "widths": (8, 16)}, "widths"),
                                          ({"num_classes": 3, "in_channels": 0}, "in_channels")])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TinyResNet(**kwargs)


def test_from_config_round_trip_and_subclass():
    model = TinyResNet(4, widths=(8, 8, 16))
    rebuilt = TinyResNet.from_config(model.config)
    assert rebuilt.config == model.config

    class Wider(TinyResNet):
        pass

    assert type(Wider.from_config({"num_classes": 2})) is Wider
    with pytest.raises(ValueError, match="unknown config keys \\['depth'\\]"):
        TinyResNet.from_config({"num_classes": 2, "depth": 50})
    with pytest.raises(ValueError, match="num_classes"):
        TinyResNet.from_config({"widths": [8, 8, 8]})
    with pytest.raises(TypeError, match="dict"):
        TinyResNet.from_config([("num_classes", 2)])


def test_count_parameters_trainable_only():
    model = TinyResNet(3)
    total = count_parameters(model)
    freeze(model.backbone)
    assert count_parameters(model, trainable_only=True) == 64 * 3 + 3
    assert count_parameters(model) == total
    with pytest.raises(TypeError, match="nn.Module"):
        count_parameters("model")


def test_requires_grad_alone_does_not_stop_batchnorm_statistics():
    """The pitfall freeze() exists for: requires_grad=False, yet running stats still move."""
    model = TinyResNet(3)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    before = model.backbone[1].running_mean.clone()
    model.train()
    model(torch.randn(8, 3, 16, 16) * 3 + 1)
    assert not torch.equal(before, model.backbone[1].running_mean)


def test_freeze_keeps_batchnorm_statistics_while_the_model_trains():
    torch.manual_seed(0)
    model = TinyResNet(3)
    freeze(model.backbone)
    buffers = copy.deepcopy({k: v for k, v in model.state_dict().items() if "running" in k})
    weights = copy.deepcopy(model.backbone.state_dict())
    model.train()  # the usual call at the top of a training epoch
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(8, 3, 16, 16) * 3 + 1),
                                    torch.randint(0, 3, (8,))).backward()
        optimizer.step()
    after = model.state_dict()
    assert all(torch.equal(buffers[k], after[k]) for k in buffers)
    assert all(torch.equal(weights[k], model.backbone.state_dict()[k]) for k in weights)
    assert model.head.training and not model.backbone[1].training
    assert _is_frozen(model.backbone) and not _is_frozen(model.head)


def test_unfreeze_restores_training_behaviour():
    model = TinyResNet(3)
    freeze(model)
    model.train()
    unfreeze(model)
    assert not _is_frozen(model)
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    before = model.backbone[1].running_mean.clone()
    model.train()
    model(torch.randn(4, 3, 16, 16) + 2)
    assert not torch.equal(before, model.backbone[1].running_mean)


def test_frozen_model_survives_deepcopy_and_state_dict():
    model = freeze(TinyResNet(3))
    clone = copy.deepcopy(model)
    clone.train()
    assert not clone.backbone[1].training
    assert set(model.state_dict()) == set(TinyResNet(3).state_dict())


def test_freeze_rejects_non_modules():
    with pytest.raises(TypeError):
        freeze(torch.zeros(2))
    with pytest.raises(TypeError):
        unfreeze(None)


def _is_frozen(module) -> bool:
    return count_parameters(module, trainable_only=True) == 0
