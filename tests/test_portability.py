"""The fragility report's parts: asserts rewritten to record margins, checked outputs compared
as nbval compares them, runs summarised and flagged, and one real notebook run per kind of
perturbation (environment, startup code, seed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import torch

from lesson_utils.portability import (
    CI_PERTURBATION,
    PERTURBATIONS,
    ClaimRecorder,
    RunResult,
    _output_text,
    format_report,
    instrument_claims,
    load_sanitizer,
    main,
    run_notebook,
    sanitize,
    seed_perturbation,
    summarize_claims,
)


def _run(source: str, cell: int = 7, namespace: dict | None = None) -> ClaimRecorder:
    recorder = ClaimRecorder()
    rewritten, _ = instrument_claims(source, cell)
    exec(rewritten, {"__claim__": recorder, **(namespace or {})})
    return recorder


def test_margin_of_each_comparison_direction():
    records = _run("assert 0.9 > 0.5\nassert 0.2 < 0.25\nassert 3 >= 3\nassert 1 <= 4").records
    margins = {k: round(v["margin"], 6) for k, v in records.items()}
    assert margins == {"cell 7 #1": 0.4, "cell 7 #2": 0.05, "cell 7 #3": 0, "cell 7 #4": 3}


def test_and_is_split_into_claims_and_chains_keep_the_smallest_margin():
    records = _run("x = 4.5\nassert x > 1 and 3 < x < 5 and x == 4.5").records
    assert set(records) == {"cell 7 #1.1", "cell 7 #1.2", "cell 7 #1.3"}
    assert records["cell 7 #1.2"]["margin"] == 0.5                 # min(4.5 - 3, 5 - 4.5)
    assert records["cell 7 #1.3"]["margin"] is None                # equality: exact
    assert records["cell 7 #1.2"]["text"] == "3 < x < 5"


def test_tensors_and_numpy_scalars_give_margins_booleans_do_not():
    records = _run("assert torch.tensor(0.3) < 0.5\nassert torch.equal(t, t)",
                   namespace={"torch": torch, "t": torch.ones(2)}).records
    assert records["cell 7 #1"]["margin"] == pytest.approx(0.2)
    assert records["cell 7 #2"] == {"text": "torch.equal(t, t)", "held": True, "margin": None,
                                    "unit": None}


def test_tolerance_claims_are_measured_in_decades():
    records = _run("assert 3e-17 < 1e-12\nassert 0.007 > 1e-06\nassert 0.3 < 0.5").records
    assert records["cell 7 #1"]["unit"] == "decades"
    assert records["cell 7 #1"]["margin"] == pytest.approx(4.523, abs=1e-3)   # log10(1e-12 / 3e-17)
    assert records["cell 7 #2"]["margin"] == pytest.approx(3.845, abs=1e-3)   # log10(0.007 / 1e-6)
    assert records["cell 7 #3"]["unit"] == "linear"
    zero = _run("assert 0.0 < 1e-12").records["cell 7 #1"]
    assert zero["held"] and zero["margin"] > 200                               # exactly zero: far


def test_a_failing_assert_still_fails_and_is_recorded():
    recorder = ClaimRecorder()
    rewritten, count = instrument_claims("assert 1 > 2, 'no'", cell=0)
    assert count == 1
    with pytest.raises(AssertionError, match="no"):
        exec(rewritten, {"__claim__": recorder})
    assert recorder.records["cell 0 #1"]["held"] is False
    assert recorder.records["cell 0 #1"]["margin"] == -1


def test_an_assert_in_a_loop_keeps_its_worst_evaluation():
    records = _run("for v in (0.9, 0.6, 0.8):\n    assert v > 0.5").records
    assert records["cell 7 #1"]["margin"] == pytest.approx(0.1)


def test_each_operand_is_evaluated_once():
    calls = []

    def value():
        calls.append(1)
        return 2

    _run("assert 1 < value() < 3", namespace={"value": value})
    assert len(calls) == 1


def test_magics_are_translated_and_cells_without_asserts_untouched():
    source = "%time x = 1\nassert x > 0"
    rewritten, count = instrument_claims(source, cell=1)
    assert count == 1 and "run_line_magic" in rewritten
    assert instrument_claims("x = 1  # no claim", cell=1) == ("x = 1  # no claim", 0)
    assert instrument_claims("def f(:\n    assert x", cell=1) == ("def f(:\n    assert x", 0)


def test_sanitizer_cuts_float_tails_like_nbval():
    rules = load_sanitizer()
    assert sanitize("0.123456 at 0x7f00deadbeef", rules) == "0.1234 at 0xADDRESS"


def test_streams_are_merged_before_comparing():
    split = {"outputs": [{"output_type": "stream", "name": "stdout", "text": "a\n"},
                         {"output_type": "stream", "name": "stdout", "text": "b\n"}]}
    whole = {"outputs": [{"output_type": "stream", "name": "stdout", "text": "a\nb\n"}]}
    assert _output_text(split) == _output_text(whole)


def _result(perturbation, margin, held=True, claim="cell 3 #1", notebook="x.ipynb"):
    return RunResult(notebook, perturbation, True, 1.0,
                     {claim: {"text": "a > b", "held": held, "margin": margin}})


def test_summary_flags_small_margins_and_failures():
    steady = summarize_claims([_result("native", 0.50), _result("aten-default", 0.48)])[0]
    assert not steady.flagged and steady.range == pytest.approx(0.02)
    assert steady.spread == pytest.approx(0.02 / 2 ** 0.5)          # sample sd of two values
    shaky = summarize_claims([_result("native", 0.05), _result("aten-default", 0.01)])[0]
    assert shaky.flagged                                           # 0.01 < 2 x 0.028
    failed = summarize_claims([_result("native", 0.2), _result("seed+1", -0.1, held=False)])[0]
    assert failed.flagged and failed.failed_in == ["seed+1"]
    missing = summarize_claims([_result("native", 0.2), RunResult("x.ipynb", "seed+2", False, 1.0)])
    assert missing[0].failed_in == ["seed+2"]                      # never reached counts as failed


def test_report_lists_flagged_claims_first():
    results = [_result("native", 0.5, claim="cell 1 #1"), _result("native", -0.1, False, "cell 9 #1", "y.ipynb")]
    report = format_report(results)
    assert report.index("cell 9 #1") < report.index("cell 1 #1") and "**FLAG**" in report


def test_perturbation_catalogue():
    assert dict(CI_PERTURBATION.env) == {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
    assert {"native", "aten-default", "mkl-compatible", "onednn-sse41", "no-mkldnn"} <= set(PERTURBATIONS)
    assert not seed_perturbation(2).floats_only and "+ 2" in seed_perturbation(2).startup
    with pytest.raises(ValueError, match="offset"):
        seed_perturbation(0)


def test_cli_rejects_unknown_perturbations(capsys):
    with pytest.raises(SystemExit):
        main(["report", "x.ipynb", "--perturbations", "native,warp-drive"])
    assert "warp-drive" in capsys.readouterr().err


@pytest.fixture
def tiny_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nimport os, torch\n"
                                  "print(os.environ.get('ATEN_CPU_CAPABILITY', 'unset'))"),
        nbformat.v4.new_code_cell("torch.manual_seed(0)\nr = torch.rand(1).item()\n"
                                  "assert r < 2, 'a claim'\nassert r > 0.9"),
        nbformat.v4.new_code_cell(
            "import subprocess, sys\n"
            "code = 'import torch; torch.manual_seed(0); print(torch.initial_seed())'\n"
            "child = int(subprocess.run([sys.executable, '-c', code], capture_output=True,\n"
            "                           text=True, check=True).stdout)\n"
            "assert child < 0.5"),
    ]
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="unset\n")]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_run_notebook_under_environment_and_seed_perturbations(tiny_notebook):
    native = run_notebook(tiny_notebook, PERTURBATIONS["native"])
    assert native.changed_cells == [] and native.errors[0].startswith("cell 1: AssertionError")
    assert native.claims["cell 1 #1"]["held"] and not native.claims["cell 1 #2"]["held"]
    r0 = native.claims["cell 1 #1"]["margin"]
    aten = run_notebook(tiny_notebook, PERTURBATIONS["aten-default"])
    assert aten.changed_cells == [0]                                # its output names the env
    assert native.claims["cell 2 #1"]["held"]
    shifted = run_notebook(tiny_notebook, seed_perturbation(1))
    assert shifted.claims["cell 1 #1"]["margin"] != r0              # another seed, another draw
    assert not shifted.claims["cell 2 #1"]["held"]                  # ... in a child process too
    json.dumps(format_report([native, aten, shifted]))


def test_make_test_runs_nbval_natively_and_under_the_ci_perturbation():
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    line = re.search(r"^PERTURBED_FLOATS := (.*)$", makefile, re.M)
    assert line, "the Makefile defines no PERTURBED_FLOATS"
    assert dict(kv.split("=") for kv in line.group(1).split()) == dict(CI_PERTURBATION.env)
    assert re.search(r"^test: .*\bnbval\b.*\bnbval-perturbed\b", makefile, re.M)
    assert "$(PERTURBED_FLOATS) $(NBVAL) $(NOTEBOOKS)" in makefile
