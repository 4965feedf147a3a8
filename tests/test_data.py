import csv

import numpy as np
import pytest
import torch
from torchvision import datasets, transforms

from lesson_utils.data import (
    SOURCE_CLASSES,
    TARGET_CLASSES,
    DigitsDataset,
    ShapesDataset,
    _targets_of,  # a private helper, tested directly
    export_image_folder,
    load_image_folder,
    long_tailed_counts,
    make_loaders,
    tensors_from,
)


def test_items_are_float_images_in_unit_range():
    ds = ShapesDataset(20, image_size=24, seed=3)
    x, y = ds[7]
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y == ds.targets[7] and isinstance(y, int)
    assert len(ds) == 20 and ds.classes == list(SOURCE_CLASSES)


def test_same_seed_and_index_give_the_same_image_other_seeds_differ():
    a, b = ShapesDataset(10, seed=1), ShapesDataset(10, seed=1)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(10))
    c = ShapesDataset(10, seed=2)
    assert not torch.equal(a[3][0], c[3][0])
    assert not torch.equal(a[3][0], a[9][0])


def test_families_are_disjoint_and_have_at_least_six_classes():
    assert len(SOURCE_CLASSES) >= 6 and len(TARGET_CLASSES) >= 6
    assert not set(SOURCE_CLASSES) & set(TARGET_CLASSES)
    target = ShapesDataset(12, family="target")
    assert target.classes == list(TARGET_CLASSES)


def test_class_names_are_sorted_so_image_folder_keeps_label_numbers():
    assert list(SOURCE_CLASSES) == sorted(SOURCE_CLASSES)
    assert list(TARGET_CLASSES) == sorted(TARGET_CLASSES)


def test_transform_receives_a_pil_image():
    ds = ShapesDataset(4, transform=transforms.Compose([transforms.Resize(16),
                                                         transforms.ToTensor()]))
    assert ds[0][0].shape == (3, 16, 16)
    plain = ShapesDataset(4, transform=transforms.ToTensor())
    assert torch.equal(plain[2][0], ShapesDataset(4)[2][0])


def test_images_vary_in_colour_and_position():
    X, y = tensors_from(ShapesDataset(60, image_size=16))
    per_image_mean = X.mean(dim=(1, 2, 3))
    assert per_image_mean.std() > 0.05
    assert y.bincount().tolist() == [10] * 6


def test_class_counts_and_imbalance():
    counts = [50, 20, 10, 5, 2, 1]
    ds = ShapesDataset(family="target", class_counts=counts, seed=4)
    assert ds.class_counts == counts and len(ds) == sum(counts)
    lt = ShapesDataset(600, imbalance_ratio=50)
    assert lt.class_counts[0] / lt.class_counts[-1] == pytest.approx(50, rel=0.15)
    assert abs(len(lt) - 600) <= 6


def test_long_tailed_counts_profile():
    counts = long_tailed_counts(10, 1000, 100)
    assert counts[0] == 1000 and counts[-1] == 10
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))
    ratios = np.array(counts[:-1]) / np.array(counts[1:])
    assert np.allclose(ratios, 100 ** (1 / 9), rtol=0.05)


@pytest.mark.parametrize("kwargs,match", [
    ({"family": "animals"}, "family must be one of"),
    ({"n": 0}, "n must be an int >= 1, got 0"),
    ({"n": -3}, "n must be an int >= 1, got -3"),
    ({"image_size": 8}, "image_size must be >= 16"),
    ({"class_counts": [1, 2, 3]}, "one count per class"),
    ({"class_counts": [0] * 6}, "positive sum"),
    ({"class_counts": [1] * 6, "imbalance_ratio": 5}, "not both"),
    ({"seed": -1}, "seed must be"),
])
def test_bad_arguments(kwargs, match):
    args = {"n": 10, **kwargs}
    n = args.pop("n")
    with pytest.raises(ValueError, match=match):
        ShapesDataset(n, **args)


@pytest.mark.parametrize("args,match", [((0, 10, 2), "num_classes"), ((3, 0, 2), "max_count"),
                                        ((3, 10, 0.5), "imbalance_ratio")])
def test_long_tailed_counts_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        long_tailed_counts(*args)


def test_index_out_of_range():
    with pytest.raises(IndexError, match="out of range"):
        ShapesDataset(3)[3]


def test_digits_dataset_is_real_and_three_channel():
    ds = DigitsDataset(image_size=20)
    x, y = ds[0]
    assert len(ds) == 1797 and ds.classes == [str(d) for d in range(10)]
    assert x.shape == (3, 20, 20) and torch.equal(x[0], x[1])
    assert sorted(set(ds.targets)) == list(range(10))
    with pytest.raises(ValueError, match="image_size"):
        DigitsDataset(image_size=4)


@pytest.mark.parametrize("make", [lambda: ShapesDataset(14, image_size=16, seed=9),
                                  lambda: torch.utils.data.Subset(DigitsDataset(image_size=16),
                                                                  range(0, 20))])
def test_export_round_trip_through_torchvision_image_folder(tmp_path, make):
    ds = make()
    if isinstance(ds, torch.utils.data.Subset):  # export needs .classes on the dataset itself
        parent = ds.dataset
        ds = ShapesLike(parent, list(ds.indices))
    root = export_image_folder(ds, tmp_path / "export")
    folder = datasets.ImageFolder(root, transform=transforms.ToTensor())
    assert folder.classes == ds.classes
    rows = list(csv.DictReader(open(root / "labels.csv")))
    assert len(rows) == len(ds) == len(folder)
    by_path = {str(root / r["id"]): int(r["label"]) for r in rows}
    for (path, label), (x, _y) in zip(folder.samples, folder, strict=False):
        index = int(path.rsplit("/", 1)[1].split(".")[0])
        assert by_path[path] == label == ds.targets[index]
        assert torch.equal(x, ds[index][0])


class ShapesLike(torch.utils.data.Dataset):
    """A subset that keeps .classes/.targets, as export needs."""

    def __init__(self, parent, indices):
        self.parent, self.indices = parent, indices
        self.classes = parent.classes
        self.targets = [parent.targets[i] for i in indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.parent[self.indices[i]]


def test_export_prefixes_unsorted_class_names(tmp_path):
    ds = ShapesLike(ShapesDataset(6, image_size=16), range(6))
    ds.classes = ["zebra", "apple", "mango", "kiwi", "fig", "date"]
    root = export_image_folder(ds, tmp_path)
    folder = datasets.ImageFolder(root)
    assert folder.classes[0] == "0_zebra"
    assert [label for _, label in folder.samples] == ds.targets


def test_export_and_load_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="classes"):
        export_image_folder(torch.utils.data.TensorDataset(torch.zeros(2, 3, 4, 4)), tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_image_folder(tmp_path / "empty")


def test_make_loaders_is_stratified_and_seeded():
    ds = ShapesDataset(family="source", class_counts=[40, 20, 10, 10, 10, 10])
    train, val = make_loaders(ds, val_fraction=0.25, batch_size=8, seed=3)
    val_counts = np.bincount(_targets_of(val.dataset), minlength=6).tolist()
    assert val_counts == [10, 5, 2, 2, 2, 2] or val_counts == [10, 5, 3, 3, 3, 3]
    assert not set(train.dataset.indices) & set(val.dataset.indices)
    assert len(train.dataset) + len(val.dataset) == len(ds)
    first = [y.tolist() for _, y in train]
    train2, _ = make_loaders(ds, val_fraction=0.25, batch_size=8, seed=3)
    torch.rand(10)  # unrelated global draws must not change the order
    assert first == [y.tolist() for _, y in train2]
    train3, _ = make_loaders(ds, val_fraction=0.25, batch_size=8, seed=4)
    assert first != [y.tolist() for _, y in train3]


def test_make_loaders_unstratified_and_errors():
    ds = ShapesDataset(30)
    train, val = make_loaders(ds, stratify=False, val_fraction=0.2)
    assert len(val.dataset) == 6
    with pytest.raises(ValueError, match="val_fraction"):
        make_loaders(ds, val_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        make_loaders(ds, batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        make_loaders(torch.utils.data.TensorDataset(torch.zeros(0), torch.zeros(0)))


def test_targets_of_and_tensors_from():
    ds = ShapesDataset(8, image_size=16)
    sub = torch.utils.data.Subset(ds, [1, 3, 5])
    assert _targets_of(sub) == [1, 3, 5]
    X, y = tensors_from(sub)
    assert X.shape == (3, 3, 16, 16) and y.tolist() == [1, 3, 5]
    td = torch.utils.data.TensorDataset(X, y)
    assert _targets_of(td) == [1, 3, 5]
