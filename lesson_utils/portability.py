"""Will a lesson hold on a student's machine? Run it under other float kernels and seeds, and
measure how far each claim ``assert`` is from failing.

Float results of training differ between CPUs: MKL, oneDNN and ATen choose kernels per CPU, so
the last bits of a sum differ, and training amplifies them. This machine can be made to compute
like another one (``ATEN_CPU_CAPABILITY=default``, ``MKL_CBWR=COMPATIBLE``, ...), and a lesson
can be re-run on other seeds. A *fragility report* does both for every notebook and lists:

- every claim ``assert`` of a notebook with its *margin* in each run (how far the compared
  values are from the threshold: ``a - b`` for ``a > b``), the *spread* of that margin over the
  runs (its standard deviation; the range is listed too), and a flag when a run failed or the
  smallest margin is under twice the spread: such a claim could fail on the next machine;
- every ``# NBVAL_CHECK_OUTPUT`` cell whose output changed under a float perturbation (such a
  cell is not machine-independent and must not be compared by nbval).

Usage::

    python -m lesson_utils.portability report notebooks/*.ipynb            # all perturbations
    python -m lesson_utils.portability report notebooks/03_losses.ipynb \\
        --perturbations native,aten-default --seeds 0 --jobs 2

It writes ``benchmarks/results/fragility.json`` and ``fragility.md`` (``--out`` changes where).

Example:
    >>> source, count = instrument_claims("assert 0.9 > 0.5, 'learned'", cell=3)
    >>> count
    1
    >>> recorder = ClaimRecorder()
    >>> exec(source, {"__claim__": recorder})
    >>> round(recorder.records["cell 3 #1"]["margin"], 2)
    0.4
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import configparser
import json
import math
import operator
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "Perturbation", "PERTURBATIONS", "CI_PERTURBATION", "seed_perturbation", "instrument_claims",
    "ClaimRecorder", "RunResult", "run_notebook", "summarize_claims", "format_report", "main",
]

ROOT = Path(__file__).resolve().parents[1]
SANITIZE_FILE = ROOT / ".ci" / "nbval_sanitize.cfg"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


# --------------------------------------------------------------------------------------------
# Perturbations: other float kernels, other seeds
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Perturbation:
    """One way of computing differently: environment variables, and code that every Python
    process of the run executes when it starts (the kernel, and what the notebook launches, such
    as ``torchrun`` workers: the code is installed as a ``sitecustomize`` module for the run).

    ``floats_only`` is True when the perturbation only changes the last bits of float results
    (another CPU); then every ``# NBVAL_CHECK_OUTPUT`` cell must keep its stored output. A seed
    perturbation changes what a lesson draws at random, so checked outputs may change.
    """

    name: str
    description: str
    env: tuple[tuple[str, str], ...] = ()
    startup: str = ""
    floats_only: bool = True


CI_PERTURBATION = Perturbation(
    "ci-perturbed", "ATen's vectorised kernels off and MKL's conditional reproducibility mode "
    "(what `make test` runs as its second nbval pass)",
    env=(("ATEN_CPU_CAPABILITY", "default"), ("MKL_CBWR", "COMPATIBLE")))

PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in [
    Perturbation("native", "this machine as it is"),
    Perturbation("aten-default", "ATen without vectorised kernels",
                 env=(("ATEN_CPU_CAPABILITY", "default"),)),
    Perturbation("aten-avx2", "ATen's AVX2 kernels (a CPU without AVX-512)",
                 env=(("ATEN_CPU_CAPABILITY", "avx2"),)),
    Perturbation("mkl-compatible", "MKL's conditional numerical reproducibility mode",
                 env=(("MKL_CBWR", "COMPATIBLE"),)),
    Perturbation("onednn-avx2", "oneDNN (convolutions) limited to AVX2",
                 env=(("ONEDNN_MAX_CPU_ISA", "AVX2"),)),
    Perturbation("onednn-sse41", "oneDNN (convolutions) limited to SSE4.1",
                 env=(("ONEDNN_MAX_CPU_ISA", "SSE41"),)),
    Perturbation("no-mkldnn", "ATen's own convolutions instead of oneDNN's",
                 startup="import torch\ntorch.backends.mkldnn.enabled = False"),
    CI_PERTURBATION,
]}

_SEED_STARTUP = """\
import random as _random
import numpy as _np
import torch as _torch
import lesson_utils.repro as _repro

def _shifted(seed_fn):
    def seeded(seed, *args, **kwargs):
        return seed_fn(int(seed) + {offset}, *args, **kwargs)
    return seeded

_torch.manual_seed = _torch.random.manual_seed = _shifted(_torch.manual_seed)
_random.seed = _shifted(_random.seed)
_np.random.seed = _shifted(_np.random.seed)
_repro.seed_everything = _shifted(_repro.seed_everything)
"""


def seed_perturbation(offset: int) -> Perturbation:
    """Every seed the lesson sets (``seed_everything``, ``torch.manual_seed``, ``random.seed``,
    ``np.random.seed``) shifted by ``offset``: the same lesson on other random draws.

    Generators seeded with ``torch.Generator().manual_seed(...)`` (data order, synthetic data)
    keep their seeds.

    Example:
        >>> seed_perturbation(3).name
        'seed+3'
    """
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 1:
        raise ValueError(f"offset must be an int >= 1, got {offset!r}")
    return Perturbation(f"seed+{offset}", f"every seed shifted by {offset}",
                        startup=_SEED_STARTUP.format(offset=offset), floats_only=False)


# --------------------------------------------------------------------------------------------
# Claims: asserts rewritten so that each records its margin
# --------------------------------------------------------------------------------------------

_OPS: dict[type, str] = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
                         ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
                         ast.NotIn: "not in"}
_APPLY: dict[str, Callable] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                               ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
                               "is": operator.is_, "is not": operator.is_not,
                               "in": lambda a, b: a in b, "not in": lambda a, b: a not in b}


def _literal(node: ast.expr) -> float | None:
    """The value of a numeric literal (``0.05``, ``-1``, ``1e-12``), else None."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class _ClaimRewriter(ast.NodeTransformer):
    def __init__(self, cell: int) -> None:
        self.cell, self.count = cell, 0

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        self.count += 1
        node.test = self._wrap(node.test, f"cell {self.cell} #{self.count}")
        return node

    def _wrap(self, test: ast.expr, claim_id: str) -> ast.expr:
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
            test.values = [self._wrap(v, f"{claim_id}.{i}") for i, v in enumerate(test.values, 1)]
            return test
        args: list[ast.expr] = [ast.Constant(claim_id), ast.Constant(ast.unparse(test))]
        if isinstance(test, ast.Compare):
            operands = [test.left, *test.comparators]
            args += [ast.List(operands, ast.Load()),
                     ast.List([ast.Constant(_OPS[type(op)]) for op in test.ops], ast.Load()),
                     ast.List([ast.Constant(_literal(o)) for o in operands], ast.Load())]
        else:
            args.append(test)
        return ast.Call(ast.Name("__claim__", ast.Load()), args, [])


def instrument_claims(source: str, cell: int) -> tuple[str, int]:
    """Rewrite every ``assert`` in a code cell so that it reports to ``__claim__``.

    ``assert a > b and c`` becomes ``assert __claim__('cell 4 #1.1', 'a > b', [a, b], ['>'])
    and __claim__('cell 4 #1.2', 'c', c)``: the same test, evaluated once, recorded with its
    margin. IPython syntax (magics, ``!`` commands) is translated first, as IPython would.

    Args:
        source: the cell's source.
        cell: the cell's index in the notebook (names the claims).

    Returns:
        The rewritten source and the number of asserts in it (the source is returned
        unchanged when it has none or cannot be parsed).

    Example:
        >>> instrument_claims("x = 1", cell=0)
        ('x = 1', 0)
    """
    if "assert" not in source:
        return source, 0
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return source, 0
    rewriter = _ClaimRewriter(cell)
    tree = ast.fix_missing_locations(rewriter.visit(tree))
    if not rewriter.count:
        return source, 0
    return ast.unparse(tree), rewriter.count


def _as_number(value) -> float | None:
    try:
        if getattr(value, "numel", lambda: 1)() != 1 or isinstance(value, (str, bytes)):
            return None
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return number if math.isfinite(number) else None


# A comparison with a literal this small is a tolerance (``diff < 1e-12``, ``gap > 1e-6``): its
# margin is counted in decades (powers of ten), the scale on which such claims live.
TOLERANCE = 1e-4


def _margin(left, op: str, right, literals: tuple = (None, None)) -> tuple[float, str] | None:
    """How far ``left op right`` is from flipping: in the units of the compared values, or in
    decades when one side is a tolerance literal (0 < literal <= 1e-4)."""
    a, b = _as_number(left), _as_number(right)
    if a is None or b is None or op not in ("<", "<=", ">", ">="):
        return None
    if any(lit is not None and 0 < lit <= TOLERANCE for lit in literals):
        a, b = (math.log10(max(abs(v), 1e-300)) for v in (a, b))
        unit = "decades"
    else:
        unit = "linear"
    return (a - b if op in (">", ">=") else b - a), unit


class ClaimRecorder:
    """Evaluates the tests of rewritten asserts and keeps, per claim, whether it held in every
    evaluation and its smallest margin (an assert in a loop is evaluated many times).

    Example:
        >>> claim = ClaimRecorder()
        >>> claim("c #1", "3 < x < 5", [3, 4.5, 5], ["<", "<"])
        True
        >>> claim.records["c #1"]["margin"]
        0.5
    """

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}

    def __call__(self, claim_id: str, text: str, operands, ops: Sequence[str] | None = None,
                 literals: Sequence[float | None] | None = None):
        margin = unit = None
        if ops is None:   # not a comparison: only its truth is known
            held = bool(operands)
        else:
            literals = literals or [None] * len(operands)
            pairs = list(zip(operands[:-1], ops, operands[1:], strict=True))
            held = all(_APPLY[op](a, b) for a, op, b in pairs)
            margins = [_margin(a, op, b, literals[i:i + 2]) for i, (a, op, b) in enumerate(pairs)]
            if margins and all(m is not None for m in margins):
                margin, unit = min(margins)
        record = self.records.setdefault(
            claim_id, {"text": text, "held": True, "margin": None, "unit": unit})
        record["held"] = record["held"] and held
        if margin is not None:
            record["margin"] = margin if record["margin"] is None else min(record["margin"], margin)
        return held

    def dump(self) -> str:
        return json.dumps(self.records)


# --------------------------------------------------------------------------------------------
# Checked outputs: the text nbval compares, after the sanitizer
# --------------------------------------------------------------------------------------------

def load_sanitizer(path: str | os.PathLike = SANITIZE_FILE) -> list[tuple[re.Pattern, str]]:
    """The (regex, replacement) pairs of an nbval sanitize file, in order.

    Example:
        >>> rules = load_sanitizer()
        >>> sanitize("loss 0.123456789", rules)
        'loss 0.1234'
    """
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(path):
        raise FileNotFoundError(f"no sanitize file at {path}")
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def sanitize(text: str, rules: Iterable[tuple[re.Pattern, str]]) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def _output_text(cell: dict) -> str:
    """What nbval compares of a cell: its streams (merged, as the chunks a kernel sends vary),
    then the plain-text form of every result and display; images are not compared."""
    streams: dict[str, str] = {}
    rest = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            name = out.get("name", "stdout")
            streams[name] = streams.get(name, "") + "".join(out.get("text", ""))
        elif "text/plain" in out.get("data", {}):
            rest.append("".join(out["data"]["text/plain"]))
        elif out.get("output_type") == "error":
            rest.append(f"[error] {out.get('ename')}: {out.get('evalue')}")
    return "\n".join([f"[{name}] {text}" for name, text in sorted(streams.items())] + rest)


def _is_checked(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and "".join(cell.get("source", "")).lstrip().startswith(
        CHECK_MARK)


# --------------------------------------------------------------------------------------------
# Running one notebook under one perturbation
# --------------------------------------------------------------------------------------------

@dataclass
class RunResult:
    """What one execution of one notebook under one perturbation showed."""

    notebook: str
    perturbation: str
    floats_only: bool
    seconds: float
    claims: dict[str, dict] = field(default_factory=dict)
    changed_cells: list[int] = field(default_factory=list)   # checked cells whose output changed
    errors: list[str] = field(default_factory=list)          # "cell N: Error: message"


def _instrumented_copy(nb) -> tuple[object, list[int]]:
    """The notebook with asserts rewritten, a recorder first and a last cell that prints the
    records; returns it and the original index of every cell."""
    import nbformat

    nb = nbformat.from_dict(json.loads(json.dumps(nb)))   # a deep copy
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source, _ = instrument_claims(cell.source, index)
    setup = ("from lesson_utils.portability import ClaimRecorder as _ClaimRecorder\n"
             "__claim__ = _ClaimRecorder()\n")
    original = list(range(len(nb.cells)))
    nb.cells = ([nbformat.v4.new_code_cell(setup)] + nb.cells
                + [nbformat.v4.new_code_cell("print(__claim__.dump())")])
    return nb, [-1] + original + [-1]


def run_notebook(path: str | os.PathLike, perturbation: Perturbation, *, timeout: int = 900,
                 rules: list[tuple[re.Pattern, str]] | None = None) -> RunResult:
    """Execute a notebook in a fresh kernel and a fresh working folder under ``perturbation``.

    Args:
        path: the ``.ipynb`` file (with its stored outputs, which checked cells are compared to).
        perturbation: what to change (see ``PERTURBATIONS`` and ``seed_perturbation``).
        timeout: seconds allowed per cell.
        rules: the nbval sanitizer (default: ``.ci/nbval_sanitize.cfg``).

    Returns:
        A ``RunResult``: each claim's truth and margin, the checked cells whose sanitized output
        differs from the stored one, and the cells that raised.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    stored = nbformat.read(path, as_version=4)
    nb, origin = _instrumented_copy(stored)
    rules = load_sanitizer() if rules is None else rules
    env = {**os.environ, **dict(perturbation.env)}
    env.pop("MPLBACKEND", None)
    with tempfile.TemporaryDirectory(prefix="portability_") as work:
        if perturbation.startup:   # every Python process of the run imports sitecustomize first
            site = Path(work) / "_site"
            site.mkdir()
            (site / "sitecustomize.py").write_text(perturbation.startup)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": work}})
        start = time.perf_counter()
        client.execute(env=env, cwd=work)
        seconds = time.perf_counter() - start
    result = RunResult(path.name, perturbation.name, perturbation.floats_only, round(seconds, 1))
    for cell, index in zip(nb.cells, origin, strict=True):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                where = f"cell {index}" if index >= 0 else "setup"
                result.errors.append(f"{where}: {out.get('ename')}: {str(out.get('evalue'))[:300]}")
        if index >= 0 and _is_checked(stored.cells[index]):
            if sanitize(_output_text(cell), rules) != sanitize(_output_text(stored.cells[index]), rules):
                result.changed_cells.append(index)
    dumped = [o for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "stream"]
    if dumped:
        result.claims = json.loads("".join(dumped[0]["text"]))
    return result


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

@dataclass
class ClaimSummary:
    """One claim over every run: how often it held, its smallest margin, and the margin's spread
    (sample standard deviation over the runs) and range (largest minus smallest)."""

    notebook: str
    claim: str
    text: str
    runs: int
    failed_in: list[str]
    min_margin: float | None
    spread: float | None
    native_margin: float | None
    unit: str | None = None        # "linear" (the values' own units) or "decades"
    range: float | None = None

    @property
    def flagged(self) -> bool:
        if self.failed_in:
            return True
        return (self.min_margin is not None and self.spread is not None
                and self.min_margin < 2 * self.spread)


def _claim_key(claim_id: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", claim_id))


def summarize_claims(results: Sequence[RunResult]) -> list[ClaimSummary]:
    """Group the claims of many runs by notebook and claim.

    A claim that a run never reached (the notebook failed before it) counts as failed there.

    Example:
        >>> runs = [RunResult("a.ipynb", p, True, 1.0, {"cell 2 #1": {"text": "x > 1",
        ...         "held": True, "margin": m}}) for p, m in (("native", 0.5), ("other", 0.1))]
        >>> s = summarize_claims(runs)[0]
        >>> (s.runs, s.min_margin, round(s.spread, 2), round(s.range, 2), s.flagged)
        (2, 0.1, 0.28, 0.4, True)
    """
    by_notebook: dict[str, list[RunResult]] = {}
    for r in results:
        by_notebook.setdefault(r.notebook, []).append(r)
    summaries = []
    for notebook, runs in sorted(by_notebook.items()):
        claim_ids = sorted({c for r in runs for c in r.claims}, key=_claim_key)
        for claim_id in claim_ids:
            seen = {r.perturbation: r.claims.get(claim_id) for r in runs}
            margins = [c["margin"] for c in seen.values() if c and c["margin"] is not None]
            native = seen.get("native")
            summaries.append(ClaimSummary(
                notebook, claim_id, next(c["text"] for c in seen.values() if c), len(runs),
                [p for p, c in seen.items() if not c or not c["held"]],
                min(margins) if margins else None,
                statistics.stdev(margins) if len(margins) > 1 else 0.0 if margins else None,
                native["margin"] if native else None,
                next((c.get("unit") for c in seen.values() if c and c.get("unit")), None),
                max(margins) - min(margins) if margins else None))
    return summaries


def _fmt(value: float | None, unit: str | None = None) -> str:
    if value is None:
        return "exact"
    return f"{value:.3g}" + (" dec" if unit == "decades" else "")


def format_report(results: Sequence[RunResult]) -> str:
    """The Markdown report: runs, flagged claims first, every claim, changed checked cells."""
    summaries = summarize_claims(results)
    flagged = [s for s in summaries if s.flagged]
    lines = ["# Fragility report", "",
             f"{len(results)} runs; {len(summaries)} claims, {len(flagged)} flagged "
             "(failed somewhere, or smallest margin < 2 x spread, the margin's standard deviation "
             "over the runs). A margin is how far a claim is "
             "from flipping, in the compared values' units, or in decades (dec) for a comparison "
             f"with a tolerance <= {TOLERANCE:g}; 'exact' claims have no margin.", "",
             "| notebook | perturbation | seconds | errors | checked cells changed |", "|---|---|---|---|---|"]
    for r in results:
        changed = ", ".join(map(str, r.changed_cells)) if r.floats_only else "(seed: not compared)"
        lines.append(f"| {r.notebook} | {r.perturbation} | {r.seconds:.0f} | {len(r.errors)} | "
                     f"{changed or 'none'} |")
    lines += ["", "| notebook | claim | assert | runs | failed in | native margin | min margin "
              "| spread (sd) | range | flag |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in sorted(summaries, key=lambda s: not s.flagged):
        text = s.text.replace("|", "\\|")
        text = text if len(text) <= 90 else text[:87] + "..."
        lines.append(f"| {s.notebook} | {s.claim} | `{text}` | {s.runs} | "
                     f"{', '.join(s.failed_in) or '-'} | {_fmt(s.native_margin, s.unit)} | "
                     f"{_fmt(s.min_margin, s.unit)} | {_fmt(s.spread, s.unit)} | "
                     f"{_fmt(s.range, s.unit)} | {'**FLAG**' if s.flagged else ''} |")
    errors = [f"- {r.notebook} under {r.perturbation}: {e}" for r in results for e in r.errors]
    if errors:
        lines += ["", "## Errors", "", *errors]
    return "\n".join(lines) + "\n"


def _run_all(paths: Sequence[Path], perturbations: Sequence[Perturbation], jobs: int,
             timeout: int) -> list[RunResult]:
    tasks = [(p, q) for p in paths for q in perturbations]
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_notebook, p, q, timeout=timeout): (p, q) for p, q in tasks}
        for future in concurrent.futures.as_completed(futures):
            path, perturbation = futures[future]
            try:
                result = future.result()
            except Exception as exc:   # a kernel that died: report it and go on
                result = RunResult(path.name, perturbation.name, perturbation.floats_only, 0.0,
                                   errors=[f"run: {type(exc).__name__}: {str(exc)[:300]}"])
            print(f"{result.notebook:34s} {result.perturbation:15s} {result.seconds:6.1f} s  "
                  f"errors {len(result.errors)}  changed {result.changed_cells}", flush=True)
            results.append(result)
    order = {q.name: i for i, q in enumerate(perturbations)}
    return sorted(results, key=lambda r: (r.notebook, order[r.perturbation]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lesson_utils.portability",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="execute notebooks under perturbations and seeds")
    report.add_argument("paths", nargs="+", type=Path)
    report.add_argument("--perturbations", default=",".join(PERTURBATIONS),
                        help=f"comma-separated, from: {', '.join(PERTURBATIONS)}")
    report.add_argument("--seeds", type=int, default=4, help="extra runs with seeds shifted by 1..N")
    report.add_argument("--jobs", type=int, default=2)
    report.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    report.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.perturbations.split(",") if n.strip()]
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        parser.error(f"unknown perturbation(s) {unknown}; known: {', '.join(PERTURBATIONS)}")
    if args.seeds < 0 or args.jobs < 1:
        parser.error(f"--seeds must be >= 0 and --jobs >= 1, got {args.seeds} and {args.jobs}")
    perturbations = [PERTURBATIONS[n] for n in names] + [
        seed_perturbation(k) for k in range(1, args.seeds + 1)]
    results = _run_all(args.paths, perturbations, args.jobs, args.timeout)
    from lesson_utils.checkpoints import atomic_write_bytes

    args.out.mkdir(parents=True, exist_ok=True)
    text = format_report(results)
    atomic_write_bytes(args.out / "fragility.md", text.encode())
    payload = {"runs": [asdict(r) for r in results],
               "claims": [{**asdict(s), "flagged": s.flagged} for s in summarize_claims(results)]}
    atomic_write_bytes(args.out / "fragility.json", json.dumps(payload, indent=1).encode())
    flagged = sum(s.flagged for s in summarize_claims(results))
    changed = sum(len(r.changed_cells) for r in results if r.floats_only)
    print(f"\n{flagged} flagged claims, {changed} changed checked outputs; "
          f"report: {args.out / 'fragility.md'}")
    return 1 if flagged or changed or any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
