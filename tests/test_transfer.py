"""Transfer learning (issue 3): re-heading torchvision models, discriminative learning rates,
the offline-aware torchvision loader, the committed course checkpoint and its recipe, the
experiment helpers of lesson 02 and its self-checks. Nothing here downloads: the network guard
of conftest.py fails any connection, and the hub cache is a temporary folder."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from lesson_utils.checkpoints import CheckpointError
from lesson_utils.checks import CheckFailed
from lesson_utils.checks import transfer as checks
from lesson_utils.models import (
    SUPPORTED_HEADS,
    TinyResNet,
    count_parameters,
    freeze,
    head_of,
    param_groups,
    replace_head,
    unfreeze,
)
from lesson_utils.pretrain import PretrainConfig, main, pretrain, source_accuracy
from lesson_utils.pretrained import (
    COURSE_CARD,
    COURSE_CHECKPOINT,
    COURSE_IMAGE_SIZE,
    REBUILD_COMMAND,
    WeightsNotCachedError,
    describe_weights,
    load_course_backbone,
    load_source_model,
    load_torchvision_model,
    read_card,
    sha256_of,
    verify_checkpoint,
)
from lesson_utils.transfer_experiment import (
    TransferSettings,
    extract_features,
    per_class_subset,
    run_strategy,
    summarize,
    train_on_tensors,
)

# ----------------------------------------------------------------------------- replace_head

# (builder name, where the head is, input size for a forward pass)
FAMILIES = [
    ("resnet18", "fc", 32),
    ("alexnet", "classifier.6", 63),
    ("vgg11", "classifier.6", 32),
    ("mobilenet_v3_small", "classifier.3", 32),
    ("efficientnet_b0", "classifier.1", 32),
    ("densenet121", "classifier", 32),
    ("convnext_tiny", "classifier.2", 32),
    ("vit_b_16", "heads.head", 224),
]


@pytest.mark.parametrize("name,where,size", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_replace_head_on_each_family(name, where, size):
    torch.manual_seed(0)
    model = load_torchvision_model(name, weights=None)
    old_name, old = head_of(model)
    assert old_name == where and old.out_features == 1000
    others = {n: p for n, p in model.named_parameters() if not n.startswith(where + ".")}
    assert replace_head(model, 7) is model
    new_name, new = head_of(model)
    assert new_name == where and new is not old
    assert (new.in_features, new.out_features) == (old.in_features, 7)
    # everything else is untouched: the very same parameter objects
    assert all(p is others[n] for n, p in model.named_parameters() if n in others)
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, size, size)).shape == (1, 7)


def test_replace_head_on_tiny_resnet_keeps_config_true():
    model = replace_head(TinyResNet(6, widths=(4, 8, 8)), 3)
    assert model.head.out_features == 3 and model.config["num_classes"] == 3
    assert TinyResNet.from_config(model.config).head.out_features == 3


def test_replaced_head_trains_after_freeze():
    model = freeze(torchvision.models.resnet18())
    replace_head(model, 4)
    assert count_parameters(model, trainable_only=True) == 512 * 4 + 4
    assert _is_frozen(model.layer4) and not _is_frozen(model.fc)


def test_replace_head_keeps_dtype():
    model = TinyResNet(3).double()
    assert replace_head(model, 2).head.weight.dtype == torch.float64


@pytest.mark.parametrize("model", [torchvision.models.squeezenet1_0(), nn.Sequential(nn.ReLU()),
                                   nn.Conv2d(3, 3, 1)], ids=["squeezenet", "sequential", "conv"])
def test_unsupported_models_get_a_list_of_supported_ones(model):
    with pytest.raises(ValueError, match="cannot find the classification head") as info:
        replace_head(model, 3)
    for where in ("fc", "heads.head", "classifier[-1]", "classifier[2]"):
        assert where in str(info.value)
    assert len(SUPPORTED_HEADS) >= 6


@pytest.mark.parametrize("num_classes", [0, -1, 2.0, True, "3"])
def test_replace_head_rejects_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        replace_head(TinyResNet(3), num_classes)


def test_head_of_rejects_non_modules():
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        head_of("resnet18")


# ----------------------------------------------------------------------------- param_groups

def test_param_groups_partition_the_parameters():
    model = torchvision.models.mobilenet_v3_small(num_classes=3)
    groups = param_groups(model, backbone_lr=1e-4, head_lr=1e-2)
    assert [g["name"] for g in groups] == ["backbone", "head"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.classifier[3].parameters()}


def test_param_groups_set_the_learning_rates():
    torch.manual_seed(0)
    model = TinyResNet(3, widths=(4, 8, 8))
    backbone_before = [p.clone() for p in model.backbone.parameters()]
    head_before = model.head.weight.clone()
    optimizer = torch.optim.SGD(param_groups(model, backbone_lr=0.0, head_lr=0.1), lr=123.0)
    model.eval()  # no BatchNorm statistics update: only the optimizer can change weights
    nn.functional.cross_entropy(model(torch.rand(4, 3, 16, 16)), torch.tensor([0, 1, 2, 0])
                                ).backward()
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(backbone_before, model.backbone.parameters(),
                                                 strict=True))
    expected = head_before - 0.1 * model.head.weight.grad
    assert torch.allclose(model.head.weight, expected)


@pytest.mark.parametrize("kwargs,match", [({"backbone_lr": -1, "head_lr": 0.1}, "backbone_lr"),
                                          ({"backbone_lr": 0.1, "head_lr": "x"}, "head_lr"),
                                          ({"backbone_lr": True, "head_lr": 0.1}, "backbone_lr")])
def test_param_groups_reject_bad_learning_rates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        param_groups(TinyResNet(3), **kwargs)


# ------------------------------------------------------------------ load_torchvision_model

@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache in tmp_path (TORCH_HOME), restored afterwards; downloading is
    made to fail loudly on top of the network guard."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def no_download(*args, **kwargs):
        raise AssertionError(f"attempted a download: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    assert Path(torch.hub.get_dir()) == tmp_path / "torch" / "hub"
    return Path(torch.hub.get_dir())


def _cache(hub: Path, filename: str, state: dict) -> Path:
    path = hub / "checkpoints" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def test_uncached_weights_give_a_clear_error_without_network(hub_dir, monkeypatch):
    attempts = []
    original_connect = socket.socket.connect

    def record(self, address):
        attempts.append(address)
        return original_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", record)
    with pytest.raises(WeightsNotCachedError) as info:
        load_torchvision_model("resnet18")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(hub_dir / "checkpoints") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "weights=None" in message and "ResNet18_Weights.IMAGENET1K_V1" in message
    assert isinstance(info.value, FileNotFoundError)
    assert attempts == [] and not (hub_dir / "checkpoints").exists()


def test_uncached_named_weights_name_their_own_file(hub_dir):
    with pytest.raises(WeightsNotCachedError, match="vit_b_16_swag-9ac1b537.pth"):
        load_torchvision_model("vit_b_16", weights="IMAGENET1K_SWAG_E2E_V1")


def test_cached_weights_are_loaded(hub_dir):
    torch.manual_seed(1)
    state = torchvision.models.resnet18().state_dict()
    _cache(hub_dir, "resnet18-f37072fd.pth", state)
    model = load_torchvision_model("resnet18", weights="DEFAULT", check_hash=False)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert describe_weights("resnet18")["cached"] is True


def test_cached_weights_with_a_new_head(hub_dir):
    torch.manual_seed(2)
    state = torchvision.models.mobilenet_v3_small().state_dict()
    _cache(hub_dir, "mobilenet_v3_small-047dcff4.pth", state)
    model = load_torchvision_model("mobilenet_v3_small", weights="IMAGENET1K_V1",
                                   num_classes=4, check_hash=False)
    assert model.classifier[3].out_features == 4
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items()
               if not k.startswith("classifier.3."))


def test_cached_file_with_a_wrong_hash_is_refused(hub_dir):
    _cache(hub_dir, "resnet18-f37072fd.pth", torchvision.models.resnet18().state_dict())
    with pytest.raises(CheckpointError, match="sha256 does not start with 'f37072fd'"):
        load_torchvision_model("resnet18")


def test_cached_file_that_would_run_code_is_refused(hub_dir):
    _cache(hub_dir, "resnet18-f37072fd.pth", {"payload": socket.socket})  # a global: not weights
    with pytest.raises(CheckpointError, match="run code"):
        load_torchvision_model("resnet18", check_hash=False)


def test_truncated_or_foreign_cached_files_are_refused(hub_dir):
    path = _cache(hub_dir, "resnet18-f37072fd.pth", torchvision.models.resnet18().state_dict())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted download
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_torchvision_model("resnet18", check_hash=False)
    path.write_bytes(b"<html>404 Not Found</html>")  # a web page saved under the weights' name
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_torchvision_model("resnet18", check_hash=False)


def test_weights_none_always_works(hub_dir):
    model = load_torchvision_model("resnet18", weights=None, num_classes=3)
    assert model.fc.out_features == 3
    assert not (hub_dir / "checkpoints").exists()


@pytest.mark.parametrize("name,weights,error,match", [
    ("resnet81", "DEFAULT", ValueError, r"did you mean \['resnet18'"),
    ("resnet18", "IMAGENET1K_V9", ValueError, r"\['DEFAULT', 'IMAGENET1K_V1'\]"),
    ("resnet18", torchvision.models.ResNet50_Weights.DEFAULT, ValueError, "ResNet18_Weights"),
    (18, "DEFAULT", TypeError, "name must be a str"),
])
def test_bad_names_and_weights(name, weights, error, match):
    with pytest.raises(error, match=match):
        load_torchvision_model(name, weights=weights)


def test_num_classes_is_checked():
    with pytest.raises(ValueError, match="num_classes"):
        load_torchvision_model("resnet18", weights=None, num_classes=0)


def test_describe_weights_is_offline_metadata(hub_dir):
    info = describe_weights("resnet50")
    enum = torchvision.models.ResNet50_Weights.DEFAULT
    assert info["weights"] == "ResNet50_Weights.IMAGENET1K_V2"
    assert info["acc@1"] == enum.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert info["crop_size"] == [224] and info["resize_size"] == [232]
    assert info["mean"] == [0.485, 0.456, 0.406] and info["cached"] is False
    with pytest.raises(ValueError, match="needs weights"):
        describe_weights("resnet50", None)


# ------------------------------------------------------------------------ course backbone

def test_committed_card_describes_the_recipe():
    card = read_card()
    assert card["image_size"] == COURSE_IMAGE_SIZE
    assert card["command"] == REBUILD_COMMAND
    assert card["file"] == COURSE_CHECKPOINT.name
    assert COURSE_CHECKPOINT.stat().st_size == card["file_bytes"] <= 5 * 2**20
    assert card["sha256"] == sha256_of(COURSE_CHECKPOINT)
    assert card["val_accuracy"] >= 0.90 and card["wall_time_s"] <= 300
    assert card["data"]["train"]["seed"] != card["data"]["val"]["seed"]
    recipe = PretrainConfig(**{k: v for k, v in card["recipe"].items()
                               if k in PretrainConfig.__dataclass_fields__})
    assert recipe.epochs == card["epochs"] and recipe.image_size == card["image_size"]
    for key in ("torch_version", "parameter_count", "history", "classes", "architecture"):
        assert key in card


def test_committed_checkpoint_fits_the_current_architecture_and_reaches_its_accuracy():
    """Fails when TinyResNet changes without the checkpoint being rebuilt."""
    card = read_card()
    model = load_source_model()
    assert count_parameters(model) == card["parameter_count"]
    seeds = {card["data"]["train"]["seed"], card["data"]["val"]["seed"]}
    fresh_seed = 4242
    assert fresh_seed not in seeds
    accuracy = source_accuracy(model, n=1800, seed=fresh_seed, image_size=card["image_size"])
    # 1,800 fresh images: the standard error of an accuracy near 0.96 is about 0.005
    assert accuracy >= card["val_accuracy"] - 0.02, (accuracy, card["val_accuracy"])


def test_load_course_backbone_has_the_pretrained_backbone_and_a_fresh_head():
    torch.manual_seed(0)
    model = load_course_backbone(4)
    assert model.head.out_features == 4 and model.training and not _is_frozen(model)
    state = torch.load(COURSE_CHECKPOINT, weights_only=True)
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[f"backbone.{name}"])
    assert model(torch.rand(2, 3, COURSE_IMAGE_SIZE, COURSE_IMAGE_SIZE)).shape == (2, 4)


@pytest.fixture
def checkpoint_copy(tmp_path):
    target = tmp_path / "tinyresnet_shapes.pt"
    shutil.copy(COURSE_CHECKPOINT, target)
    shutil.copy(COURSE_CARD, target.with_suffix(".json"))
    return target


def test_sha_mismatch_is_a_clear_error(checkpoint_copy):
    data = bytearray(checkpoint_copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoint_copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or was changed") as info:
        load_course_backbone(3, checkpoint=checkpoint_copy)
    assert REBUILD_COMMAND in str(info.value)


def test_missing_checkpoint_names_the_rebuild_command(checkpoint_copy):
    checkpoint_copy.unlink()
    with pytest.raises(FileNotFoundError, match="python -m lesson_utils.pretrain --output"):
        load_course_backbone(3, checkpoint=checkpoint_copy)


def test_missing_or_broken_card(checkpoint_copy):
    card = checkpoint_copy.with_suffix(".json")
    card.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        verify_checkpoint(checkpoint_copy)
    card.write_text(json.dumps({"sha256": "x"}))
    with pytest.raises(CheckpointError, match="lacks"):
        verify_checkpoint(checkpoint_copy)
    card.unlink()
    with pytest.raises(FileNotFoundError, match=REBUILD_COMMAND):
        verify_checkpoint(checkpoint_copy)


def test_architecture_change_asks_for_a_rebuild(checkpoint_copy):
    card_path = checkpoint_copy.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["architecture"]["config"]["widths"] = [8, 16, 32]  # as if TinyResNet had changed
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="shape mismatch.*architecture.*changed") as info:
        load_course_backbone(3, checkpoint=checkpoint_copy)
    assert REBUILD_COMMAND in str(info.value)


@pytest.mark.parametrize("num_classes", [0, "4", None])
def test_load_course_backbone_checks_num_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        load_course_backbone(num_classes)


# ----------------------------------------------------------------------------- the recipe

TINY = PretrainConfig(train_size=48, val_size=12, epochs=2, batch_size=16, widths=(4, 8, 8))


def test_recipe_writes_both_files_atomically_and_is_seeded(tmp_path):
    first = pretrain(TINY, output=tmp_path / "a" / "m.pt", progress=False)
    second = pretrain(TINY, output=tmp_path / "b" / "m.pt", progress=False)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["m.json", "m.pt"]  # no temps
    assert first["sha256"] == second["sha256"]  # same seed, same weights, same bytes
    assert json.loads((tmp_path / "a" / "m.json").read_text()) == first
    model = load_course_backbone(2, checkpoint=tmp_path / "a" / "m.pt")
    assert model.widths == (4, 8, 8) and model.head.out_features == 2
    assert len(first["history"]) == 2 and first["parameter_count"] == count_parameters(
        TinyResNet(6, widths=(4, 8, 8)))


def _hand_written_recipe(config: PretrainConfig) -> dict[str, torch.Tensor]:
    """The recipe as a plain loop (what pretrain() was before it used fit)."""
    from lesson_utils.data import SOURCE_CLASSES, ShapesDataset, tensors_from
    from lesson_utils.repro import seed_everything

    X, y = tensors_from(ShapesDataset(config.train_size, family="source",
                                      image_size=config.image_size, seed=config.train_seed))
    generator = seed_everything(config.seed)
    model = TinyResNet(len(SOURCE_CLASSES), widths=config.widths)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.max_lr, momentum=config.momentum,
                                nesterov=True, weight_decay=config.weight_decay)
    steps = -(-config.train_size // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.max_lr,
                                                    total_steps=config.epochs * steps)
    for _ in range(config.epochs):
        model.train()
        for batch in torch.randperm(config.train_size, generator=generator).split(
                config.batch_size):
            loss = nn.functional.cross_entropy(model(X[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.state_dict()


def test_recipe_through_fit_equals_the_hand_written_loop_bit_for_bit(tmp_path):
    """One loop: pretrain() runs fit over tensor_loader, and gets exactly the weights of the
    plain loop (the committed checkpoint's numbers did not move when the recipe switched)."""
    pretrain(TINY, output=tmp_path / "m.pt", progress=False)
    ours = torch.load(tmp_path / "m.pt", weights_only=True)
    reference = _hand_written_recipe(TINY)
    assert all(torch.equal(ours[k], reference[k]) for k in reference)


def test_train_on_tensors_equals_the_hand_written_loop_bit_for_bit():
    X, y = torch.randn(50, 6), torch.arange(50) % 3
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(nn.Linear(6, 3))
    opts = [torch.optim.AdamW(m.parameters(), lr=0.01) for m in models]
    train_on_tensors(models[0], X, y, optimizer=opts[0], num_epochs=3, batch_size=8, seed=4)
    generator = torch.Generator().manual_seed(4)
    for _ in range(3):
        for batch in torch.randperm(50, generator=generator).split(8):
            loss = nn.functional.cross_entropy(models[1](X[batch]), y[batch])
            opts[1].zero_grad()
            loss.backward()
            opts[1].step()
    assert torch.equal(models[0].weight, models[1].weight)


def test_recipe_seed_changes_the_weights(tmp_path):
    from dataclasses import replace

    a = pretrain(TINY, output=tmp_path / "a.pt", progress=False)
    b = pretrain(replace(TINY, seed=1), output=tmp_path / "b.pt", progress=False)
    assert a["sha256"] != b["sha256"]


@pytest.mark.parametrize("kwargs,match", [({"epochs": 0}, "epochs"),
                                          ({"image_size": 8}, "image_size"),
                                          ({"train_seed": 3, "val_seed": 3}, "must differ"),
                                          ({"max_lr": 0.0}, "max_lr")])
def test_recipe_config_is_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PretrainConfig(**kwargs)


def test_recipe_output_must_be_a_pt_file(tmp_path):
    with pytest.raises(ValueError, match="output"):
        pretrain(TINY, output=tmp_path / "m.pth", progress=False)


def test_command_line_verify(capsys, tmp_path):
    assert main(["--verify"]) == 0
    assert "sha256 ok" in capsys.readouterr().out
    assert main(["--verify", "--output", str(tmp_path / "missing.pt")]) == 1
    assert REBUILD_COMMAND in capsys.readouterr().err


def test_command_line_trains(capsys, tmp_path):
    out = tmp_path / "cli.pt"
    assert main(["--output", str(out), "--epochs", "1", "--train-size", "24", "--quiet"]) == 0
    assert "val accuracy" in capsys.readouterr().out
    assert read_card(out)["recipe"]["train_size"] == 24


# ---------------------------------------------------------------------- experiment helpers

def test_per_class_subset_is_balanced_seeded_and_checked():
    y = torch.arange(30) % 3
    a, b = per_class_subset(y, 4, seed=0), per_class_subset(y, 4, seed=0)
    assert torch.equal(a, b) and y[a].bincount().tolist() == [4, 4, 4]
    assert not torch.equal(a, per_class_subset(y, 4, seed=1))
    with pytest.raises(ValueError, match="has only 10"):
        per_class_subset(y, 11, seed=0)
    with pytest.raises(ValueError, match="per_class"):
        per_class_subset(y, 0, seed=0)
    with pytest.raises(TypeError, match="int64"):
        per_class_subset(y.float(), 2, seed=0)


def test_extract_features_restores_the_mode_and_tracks_no_gradient():
    model = TinyResNet(3)
    model.train()
    X = torch.rand(5, 3, 16, 16)
    features = extract_features(model.backbone, X, batch_size=2)
    assert features.shape == (5, 64) and not features.requires_grad and model.backbone.training
    model.eval()  # features are those of eval mode (running statistics, not the batch's)
    with torch.no_grad():
        assert torch.allclose(features, model.backbone(X), atol=1e-6)
    assert torch.allclose(extract_features(model.backbone, X), features, atol=1e-6)
    assert not model.backbone.training


def test_precomputed_features_equal_training_the_frozen_model():
    """The bridge of lesson 02: a head trained on precomputed features is exactly the head
    trained inside the frozen model."""
    from lesson_utils.data import ShapesDataset, tensors_from

    X, y = tensors_from(ShapesDataset(36, family="target", image_size=COURSE_IMAGE_SIZE))
    torch.manual_seed(0)
    whole = load_course_backbone(6)
    freeze(whole.backbone)
    torch.manual_seed(0)
    probe = load_course_backbone(6)
    assert torch.equal(whole.head.weight, probe.head.weight)
    kwargs = {"num_epochs": 3, "batch_size": 8, "seed": 5}
    train_on_tensors(whole, X, y, optimizer=torch.optim.SGD(whole.head.parameters(), lr=0.1),
                     **kwargs)
    features = extract_features(probe.backbone, X)
    train_on_tensors(probe.head, features, y,
                     optimizer=torch.optim.SGD(probe.head.parameters(), lr=0.1), **kwargs)
    assert torch.allclose(whole.head.weight, probe.head.weight, atol=1e-6)
    assert torch.equal(whole.backbone.state_dict()["1.running_mean"],
                       probe.backbone.state_dict()["1.running_mean"])


def test_run_strategy_changes_only_what_it_should():
    from lesson_utils.data import ShapesDataset, tensors_from

    X, y = tensors_from(ShapesDataset(24, family="target", image_size=COURSE_IMAGE_SIZE))
    common = {"num_classes": 6, "num_epochs": 2, "batch_size": 8, "seed": 0, "eval_every": 1}
    results = {s: run_strategy(s, X, y, X, y, **common) for s in ("scratch", "frozen", "finetune")}
    for result in results.values():
        assert result.epochs == [1, 2] and result.accuracy == result.curve[-1]
    features = extract_features(load_course_backbone(6).backbone, X)
    again = run_strategy("frozen", X, y, X, y, features=(features, features), **common)
    assert again.curve == results["frozen"].curve
    with pytest.raises(ValueError, match=r"strategy must be one of \['scratch', 'frozen'"):
        run_strategy("linear", X, y, X, y, **common)
    with pytest.raises(ValueError, match="features must match"):
        run_strategy("frozen", X, y, X, y, features=(features[:3], features), **common)


def test_run_strategy_settings_reach_the_optimizer(monkeypatch):
    seen = {}
    original = torch.optim.AdamW

    class Spy(original):
        def __init__(self, params, **kwargs):
            super().__init__(params, **kwargs)
            seen["lrs"] = sorted(g["lr"] for g in self.param_groups)

    monkeypatch.setattr(torch.optim, "AdamW", Spy)
    X, y = torch.rand(6, 3, 16, 16), torch.arange(6) % 2
    run_strategy("finetune", X, y, X, y, num_classes=2, num_epochs=1, batch_size=6, seed=0,
                 settings=TransferSettings(head_lr=0.5, backbone_lr=0.005))
    assert seen["lrs"] == [0.005, 0.5]


def test_train_on_tensors_checks_its_input():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="X_test and y_test"):
        train_on_tensors(model, torch.rand(4, 2), torch.zeros(4, dtype=torch.long), optimizer=opt,
                         num_epochs=1, batch_size=2, X_test=torch.rand(4, 2))
    with pytest.raises(ValueError, match="shapes"):
        train_on_tensors(model, torch.rand(4, 2), torch.zeros(3, dtype=torch.long), optimizer=opt,
                         num_epochs=1, batch_size=2)
    with pytest.raises(ValueError, match="num_epochs"):
        train_on_tensors(model, torch.rand(4, 2), torch.zeros(4, dtype=torch.long), optimizer=opt,
                         num_epochs=0, batch_size=2)


def test_run_strategy_early_stopping_keeps_the_best_epoch_and_counts_steps():
    from lesson_utils.data import ShapesDataset, tensors_from

    X, y = tensors_from(ShapesDataset(24, family="target", image_size=COURSE_IMAGE_SIZE))
    Xv, yv = tensors_from(ShapesDataset(12, family="target", image_size=COURSE_IMAGE_SIZE, seed=1))
    common = {"num_classes": 6, "batch_size": 8, "seed": 0, "validation": (Xv, yv)}
    result = run_strategy("scratch", X, y, X, y, num_epochs=30, patience=2, **common)
    assert result.epochs_run < 30 and result.steps == 3 * result.epochs_run
    assert result.epochs_run == result.best_epoch + 2  # stopped 2 epochs after the best
    # min_epochs: a baseline is never stopped before the budget of what it is compared with
    longer = run_strategy("scratch", X, y, X, y, num_epochs=30, patience=2, min_epochs=12,
                          **common)
    assert longer.epochs_run >= 12
    frozen = run_strategy("frozen", X, y, X, y, num_epochs=4, patience=10, **common)
    assert frozen.epochs_run == 4 and frozen.steps == 12
    with pytest.raises(ValueError, match="patience needs validation"):
        run_strategy("frozen", X, y, X, y, num_classes=6, num_epochs=2, batch_size=8, seed=0,
                     patience=2)


def test_early_stopping_start_from_epoch():
    from lesson_utils.training import EarlyStopping, fit

    torch.manual_seed(0)
    X, y = torch.randn(16, 2), torch.arange(16) % 2   # labels unrelated to X: val never improves
    loader = [(X, y)]
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing changes: the first epoch is best
    short = fit(model, loader, loader, nn.CrossEntropyLoss(), opt, num_epochs=20, progress=False,
                early_stopping=EarlyStopping("val_loss", patience=2))
    late = fit(model, loader, loader, nn.CrossEntropyLoss(), opt, num_epochs=20, progress=False,
               early_stopping=EarlyStopping("val_loss", patience=2, start_from_epoch=9))
    assert len(short) == 3 and len(late) == 9
    with pytest.raises(ValueError, match="start_from_epoch"):
        EarlyStopping(start_from_epoch=-1)


def test_transfer_curve_rows_and_fair_scratch_budget():
    from lesson_utils.data import ShapesDataset, tensors_from
    from lesson_utils.transfer_experiment import epochs_for, transfer_curve

    data = tensors_from(ShapesDataset(36, family="target", image_size=COURSE_IMAGE_SIZE))
    rows = transfer_curve(data, data, data, sizes=[2, 4], seeds=[0], steps=6, patience_steps=2,
                          min_epoch_steps=1)
    assert [(r["strategy"], r["per_class"]) for r in rows] == [  # scratch after fine-tune
        ("frozen", 2), ("finetune", 2), ("scratch", 2), ("frozen", 4), ("finetune", 4),
        ("scratch", 4)]
    by = {(r["strategy"], r["per_class"]): r for r in rows}
    for size in (2, 4):
        assert by[("scratch", size)]["epochs_run"] >= by[("finetune", size)]["epochs_run"]
        assert by[("finetune", size)]["steps"] <= 6 + epochs_for(6 * size, 32, 6)
    assert epochs_for(1, 32, 5) == 5
    # a tiny training set is repeated: an epoch has at least min_epoch_steps steps
    repeated = transfer_curve(data, data, data, sizes=[2], seeds=[0], strategies=["frozen"],
                              steps=6, patience_steps=2, batch_size=4, min_epoch_steps=3)
    assert repeated[0]["steps"] % 3 == 0 and repeated[0]["steps"] >= 6


def test_summarize_matches_torch_std():
    values = [0.5, 0.7, 0.8, 0.65]
    rows = [{"case": "a", "strategy": "s", "accuracy": v} for v in values]
    (summary,) = summarize(rows, by=["case", "strategy"])
    assert summary["n"] == 4 and summary["mean"] == pytest.approx(sum(values) / 4)
    assert summary["std"] == pytest.approx(torch.tensor(values).std().item())


# ----------------------------------------------------------------------------- self-checks

def _freeze_all_but_head(model):
    freeze(model)
    unfreeze(head_of(model)[1])
    return model


def test_check_freeze_all_but_head_passes_the_solution():
    assert checks.check_freeze_all_but_head(_freeze_all_but_head)


@pytest.mark.parametrize("wrong,match", [
    (lambda m: [p.requires_grad_(False) for n, p in m.named_parameters()
                if not (n.startswith("fc.") or n.startswith("head."))] and m, "BatchNorm"),
    (lambda m: freeze(m), "nothing trains"),
    (lambda m: m, "outside the head still train"),
    (lambda m: TinyResNet(5), "return the model you were given"),
    (lambda m: 1 / 0, "ZeroDivisionError"),
    (42, "expected a function"),
])
def test_check_freeze_all_but_head_catches_mistakes(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_freeze_all_but_head(wrong)


@pytest.mark.parametrize("answer,match", [(2560, "bias"), (11_179_077, "whole network"),
                                          (7, "expected 2,565"), ("2565", "expected an int")])
def test_check_trainable_count(answer, match):
    assert checks.check_trainable_count(2565)
    with pytest.raises(CheckFailed, match=match):
        checks.check_trainable_count(answer)


def test_check_unfreeze_last_stage():
    assert checks.check_unfreeze_last_stage(lambda m: (unfreeze(m.backbone[5]),
                                                       unfreeze(m.head)) and m)

    def requires_grad_only(m):
        for p in [*m.backbone[5].parameters(), *m.head.parameters()]:
            p.requires_grad_(True)

    with pytest.raises(CheckFailed, match="eval mode"):
        checks.check_unfreeze_last_stage(requires_grad_only)
    with pytest.raises(CheckFailed, match="too much trains"):
        checks.check_unfreeze_last_stage(lambda m: unfreeze(m) and None)
    with pytest.raises(CheckFailed, match="head is still frozen"):
        checks.check_unfreeze_last_stage(lambda m: unfreeze(m.backbone[5]) and None)


def test_check_finetune_optimizer():
    assert checks.check_finetune_optimizer(
        lambda m, lr: torch.optim.SGD(param_groups(m, backbone_lr=lr / 10, head_lr=lr), lr=lr))
    with pytest.raises(CheckFailed, match="10x slower"):
        checks.check_finetune_optimizer(lambda m, lr: torch.optim.SGD(m.parameters(), lr=lr))
    with pytest.raises(CheckFailed, match="in no group"):
        checks.check_finetune_optimizer(lambda m, lr: torch.optim.SGD(m.head.parameters(), lr=lr))
    with pytest.raises(CheckFailed, match="raised ValueError"):  # torch refuses duplicates
        checks.check_finetune_optimizer(lambda m, lr: torch.optim.SGD(
            [{"params": list(m.parameters())}, {"params": list(m.head.parameters())}], lr=lr))
    with pytest.raises(CheckFailed, match="expected a torch.optim optimizer"):
        checks.check_finetune_optimizer(lambda m, lr: param_groups(m, backbone_lr=lr,
                                                                   head_lr=lr))


# ----------------------------------------------------------------------------- plots

def test_plot_transfer_curves_mean_and_band():
    from lesson_utils.plotting import plot_transfer_curves

    ax = plot_transfer_curves({"finetune": ([1, 2, 3], [[0.5, 0.7, 0.9], [0.7, 0.9, 0.9]])},
                              chance=0.1, title="t")
    assert ax.lines[0].get_ydata().tolist() == pytest.approx([0.6, 0.8, 0.9])
    assert ax.get_title() == "t" and len(ax.collections) == 1  # the ±std band
    with pytest.raises(ValueError, match="3 epochs"):
        plot_transfer_curves({"scratch": ([1, 2, 3], [[0.1, 0.2]])})


def _is_frozen(module) -> bool:
    return count_parameters(module, trainable_only=True) == 0


def test_plot_transfer_by_size_one_line_per_strategy_with_chance_and_ceiling():
    import matplotlib

    matplotlib.use("Agg")
    from lesson_utils.plotting import plot_transfer_by_size

    rows = [{"strategy": s, "per_class": n, "mean": m, "std": 0.02}
            for s, base in (("scratch", 0.2), ("frozen", 0.5)) for n, m in ((5, base), (50, base + 0.2))]
    ax = plot_transfer_by_size(rows, chance=0.1, ceiling=0.9)
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["scratch", "frozen", "chance", "ceiling (scratch, much data)"]
    assert ax.get_xscale() == "log" and ax.lines[1].get_ydata().tolist() == [0.5, 0.7]
    with pytest.raises(ValueError, match="empty"):
        plot_transfer_by_size([])
