"""Tests for lesson 01's self-checks (``lesson_utils.checks.models``): each passes on the
notebook's solution, fails on the student version of the exercise cell, and names the typical
mistake."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

from lesson_utils.assignments.student import grade_id_of, make_student_notebook
from lesson_utils.checks import CheckFailed
from lesson_utils.checks.models import (
    _SmallNet,
    _SmallNetV2,
    check_centered_mlp,
    check_from_sizes,
    check_port_state_dict,
)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_models.ipynb"


@pytest.fixture(scope="module")
def lesson():
    instructor = nbformat.read(NOTEBOOK, as_version=4)
    return instructor, make_student_notebook(instructor)


def _cell(nb, starts_with: str) -> str:
    (source,) = [c.source for c in nb.cells if c.source.startswith(starts_with)]
    return source


def _exercise(lesson, grade_id: str, *, student: bool) -> tuple[str, str]:
    """(exercise cell, check cell) sources, as the instructor or the student has them."""
    instructor, student_nb = lesson
    (i,) = [i for i, c in enumerate(instructor.cells) if grade_id_of(c) == grade_id]
    assert grade_id_of(instructor.cells[i + 1]) == f"{grade_id}-check"
    return (student_nb if student else instructor).cells[i].source, instructor.cells[i + 1].source


def _namespace(lesson) -> dict:
    namespace = {"torch": torch, "nn": nn}
    exec(_cell(lesson[0], "# NBVAL_CHECK_OUTPUT\nclass BuggyCenteredMLP"), namespace)
    return namespace


@pytest.mark.parametrize("grade_id", ["01-centered-mlp", "01-port-state-dict", "01-from-sizes"])
def test_the_notebook_solution_passes(lesson, grade_id, capsys):
    exercise, check = _exercise(lesson, grade_id, student=False)
    namespace = _namespace(lesson)
    exec(exercise, namespace)
    exec(check, namespace)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("grade_id", ["01-centered-mlp", "01-port-state-dict"])
def test_the_student_stub_fails_with_not_implemented(lesson, grade_id):
    exercise, check = _exercise(lesson, grade_id, student=True)
    assert "raise NotImplementedError()" in exercise
    namespace = _namespace(lesson)
    exec(exercise, namespace)  # defines the function/class; calling it raises
    with pytest.raises(CheckFailed, match="not implemented yet"):
        exec(check, namespace)


def test_the_from_sizes_stub_stops_at_the_class_and_the_check_cannot_pass(lesson):
    exercise, check = _exercise(lesson, "01-from-sizes", student=True)
    namespace = _namespace(lesson)
    with pytest.raises(NotImplementedError):
        exec(exercise, namespace)
    with pytest.raises(NameError, match="MLP"):
        exec(check, namespace)
    with pytest.raises(CheckFailed, match="no from_sizes method"):
        check_from_sizes(type("MLP", (nn.Sequential,), {}))


# ----------------------------------------------------------------------------- CenteredMLP

def _centered(init):
    """A CenteredMLP whose __init__ body is ``init(self, sizes)``; forward is the lesson's."""
    def __init__(self, sizes=(4, 8, 3), momentum=0.1):
        nn.Module.__init__(self)
        self.momentum = momentum
        init(self, sizes)

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.input_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        x = x - self.input_mean
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)

    return type("CenteredMLP", (nn.Module,), {"__init__": __init__, "forward": forward})


def _linears(sizes):
    return [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


def _right(self, sizes):
    self.layers = nn.ModuleList(_linears(sizes))
    self.register_buffer("input_mean", torch.zeros(sizes[0]))


def _sequential(self, sizes):
    self.layers = nn.Sequential(*_linears(sizes))
    self.register_buffer("input_mean", torch.zeros(sizes[0]))


def test_check_centered_mlp_accepts_a_module_list_or_a_sequential(capsys):
    assert check_centered_mlp(_centered(_right))
    assert check_centered_mlp(_centered(_sequential))
    assert capsys.readouterr().out.count("✅") == 2


def _python_list(self, sizes):
    self.layers = _linears(sizes)
    self.register_buffer("input_mean", torch.zeros(sizes[0]))


def _plain_tensor(self, sizes):
    self.layers = nn.ModuleList(_linears(sizes))
    self.input_mean = torch.zeros(sizes[0])


def _parameter(self, sizes, requires_grad=True):
    self.layers = nn.ModuleList(_linears(sizes))
    self.input_mean = nn.Parameter(torch.zeros(sizes[0]), requires_grad=requires_grad)


def _frozen_parameter(self, sizes):
    _parameter(self, sizes, requires_grad=False)


def _not_persistent(self, sizes):
    self.layers = nn.ModuleList(_linears(sizes))
    self.register_buffer("input_mean", torch.zeros(sizes[0]), persistent=False)


def _two_layers_always(self, sizes):
    self.layers = nn.ModuleList([nn.Linear(sizes[0], 8), nn.Linear(8, sizes[-1])])
    self.register_buffer("input_mean", torch.zeros(sizes[0]))


def _both_bugs(self, sizes):
    self.layers = _linears(sizes)
    self.input_mean = torch.zeros(sizes[0])


@pytest.mark.parametrize("init, match", [
    (_python_list, "Python list are invisible to parameters.*nn.ModuleList"),
    (_both_bugs, "Python list are invisible to parameters.*nn.ModuleList"),
    (_plain_tensor, "plain tensor attribute: state_dict\\(\\) does not contain it.*register_buffer"),
    (_parameter, "optimizer, which would train it.*register_buffer"),
    (_frozen_parameter, "optimizer, which would train it.*register_buffer"),
    (_not_persistent, "non-persistent buffer.*persistent=True"),
    (_two_layers_always, "one nn.Linear per pair of neighbouring sizes"),
], ids=lambda v: getattr(v, "__name__", "")[:20])
def test_check_centered_mlp_names_the_typical_mistake(init, match):
    with pytest.raises(CheckFailed, match=match):
        check_centered_mlp(_centered(init))


def test_check_centered_mlp_on_the_lessons_buggy_class_and_on_junk(lesson):
    with pytest.raises(CheckFailed, match="nn.ModuleList"):
        check_centered_mlp(_namespace(lesson)["BuggyCenteredMLP"])
    with pytest.raises(CheckFailed, match="should build an nn.Module"):
        check_centered_mlp(lambda sizes: None)
    with pytest.raises(CheckFailed, match="expected a function"):
        check_centered_mlp(3)


# ----------------------------------------------------------------------------- port_state_dict

RENAME = {"features.0": "conv", "features.1": "norm", "classifier": "head"}


def _port(old_state, keep=lambda name: True):
    return {RENAME[k.rsplit(".", 1)[0]] + "." + k.rsplit(".", 1)[1]: v
            for k, v in old_state.items() if keep(k)}


def _parameters_only(old_state):
    params = {name for name, _ in _SmallNet().named_parameters()}
    return _port(old_state, keep=lambda k: k in params)


def _without_num_batches_tracked(old_state):
    return _port(old_state, keep=lambda k: not k.endswith("num_batches_tracked"))


def _by_position(old_state):
    return dict(zip(_SmallNetV2().state_dict(), old_state.values(), strict=True))


def _swapped_statistics(old_state):
    new = _port(old_state)
    new["norm.running_mean"], new["norm.running_var"] = (new["norm.running_var"],
                                                         new["norm.running_mean"])
    return new


def _in_place(old_state):
    for key in list(old_state):
        old_state[RENAME[key.rsplit(".", 1)[0]] + "." + key.rsplit(".", 1)[1]] = old_state.pop(key)
    return old_state


def test_check_port_state_dict_passes_on_a_renaming(capsys):
    assert check_port_state_dict(_port)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("port, match", [
    (_parameters_only, "running_mean, running_var and num_batches_tracked are buffers"),
    (_without_num_batches_tracked, "missing \\['norm.num_batches_tracked'\\].*buffers"),
    (lambda old: dict(old), "print SmallNetV2\\(\\).state_dict\\(\\) next to old_state"),
    (_by_position, "pair them by name"),
    (_swapped_statistics, "outputs differ.*running_mean/running_var"),
    (_in_place, "changed the dict it was given"),
    (lambda old: None, "forget to `return`"),
    (lambda old: list(old.items()), "expected a dict"),
], ids=["parameters-only", "no-num-batches", "unchanged", "by-position", "swapped", "in-place",
        "none", "list"])
def test_check_port_state_dict_names_the_typical_mistake(port, match):
    with pytest.raises(CheckFailed, match=match):
        check_port_state_dict(port)


def test_the_checkers_models_are_the_notebooks(lesson):
    """The check builds its own SmallNet and SmallNetV2: they must be the lesson's classes."""
    namespace = {"torch": torch, "nn": nn}
    for start in ("# NBVAL_CHECK_OUTPUT\nclass SmallNet(", "# NBVAL_CHECK_OUTPUT\nclass SmallNetV2"):
        tree = ast.parse(_cell(lesson[0], start))
        classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
        exec(compile(ast.Module(body=classes, type_ignores=[]), "<cell>", "exec"), namespace)
    for ours, theirs in [(_SmallNet, namespace["SmallNet"]), (_SmallNetV2, namespace["SmallNetV2"])]:
        a, b = ours(), theirs()
        assert [(k, v.shape) for k, v in a.state_dict().items()] == [
            (k, v.shape) for k, v in b.state_dict().items()]
        assert [repr(m) for m in a.children()] == [repr(m) for m in b.children()]
        b.load_state_dict(a.state_dict())
        x = torch.randn(2, 3, 8, 8)
        assert torch.equal(a.eval()(x), b.eval()(x))


# ----------------------------------------------------------------------------- from_sizes

def _mlp(body: str):
    namespace = {"nn": nn}
    exec("class MLP(nn.Sequential):\n" + body, namespace)
    return namespace["MLP"]


LAYERS = ("        layers = []\n        for a, b in zip(sizes, sizes[1:]):\n"
          "            layers += [nn.Linear(a, b), nn.ReLU()]\n")


def test_check_from_sizes_passes(capsys):
    assert check_from_sizes(_mlp("    @classmethod\n    def from_sizes(cls, sizes):\n" + LAYERS
                                 + "        return cls(*layers[:-1])\n"))
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("body, match", [
    ("    @staticmethod\n    def from_sizes(sizes):\n" + LAYERS
     + "        return MLP(*layers[:-1])\n", "is a @staticmethod.*@classmethod"),
    ("    def from_sizes(cls, sizes):\n" + LAYERS + "        return cls(*layers[:-1])\n",
     "must be a @classmethod"),
    ("    @classmethod\n    def from_sizes(cls, sizes):\n" + LAYERS
     + "        return MLP(*layers[:-1])\n", "a subclass's from_sizes must build the subclass"),
    ("    @classmethod\n    def from_sizes(cls, sizes):\n" + LAYERS + "        return cls(*layers)\n",
     "clips the logits at 0"),
    ("    @classmethod\n    def from_sizes(cls, sizes):\n" + LAYERS
     + "        return cls(*layers[::2])\n", "put a ReLU between"),
    ("    @classmethod\n    def from_sizes(cls, sizes):\n" + LAYERS
     + "        model = cls()\n        model.layers = layers\n        return model\n",
     "Python list are invisible"),
    ("    @classmethod\n    def from_sizes(cls, sizes):\n        cls(nn.Linear(4, 2))\n",
     "returned None"),
], ids=["static", "plain-method", "by-name", "relu-last", "no-relu", "list", "none"])
def test_check_from_sizes_names_the_typical_mistake(body, match):
    with pytest.raises(CheckFailed, match=match):
        check_from_sizes(_mlp(body))


def test_check_from_sizes_wants_the_class():
    with pytest.raises(CheckFailed, match="expected the class MLP"):
        check_from_sizes(nn.Sequential())
