"""Grading integrity: the cheat corpus (``tests/cheats/``), hidden tests judged outside the
kernel, the static review, the dynamic hook reports, escaped processes and ``--isolate``.

The corpus is graded in one ``grade_submissions`` run over the small fixture assignment of
``tests/cheats/fixture.py`` (no torch: a kernel starts in about a second), together with the
honest solved and unsolved notebooks.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from cheats import Cheat, load_corpus
from cheats.fixture import install_setup, instructor_notebook
from nbformat.v4 import new_code_cell

from lesson_utils.assignments import _sentinel, capstone, grader  # _sentinel: no channel here
from lesson_utils.assignments.grader import (
    GradeCell,
    build_grading_notebook,
    grade_cell_source,
    grade_submissions,
    grading_plan,
)
from lesson_utils.assignments.integrity import (
    AuditChannel,
    CellEvidence,
    cell_problems,
    compare,
    event_flags,
    read_report,
)
from lesson_utils.assignments.judging import (
    check_judges,
    read_submitted_text,
)
from lesson_utils.assignments.kernel import run_cells
from lesson_utils.assignments.processes import child_pids, grader_guards, kill_escaped
from lesson_utils.assignments.review import REASONS, cell_findings, review_flags
from lesson_utils.assignments.sandbox import Sandbox, isolation_problem
from lesson_utils.assignments.student import grade_id_of, is_grade_cell, make_student_notebook
from lesson_utils.checks import CheckFailed
from lesson_utils.checks.capstone import check_hidden_test_f1

CORPUS = load_corpus()
ROOT = Path(__file__).parents[1]


def _submission(cheat: Cheat, solved, unsolved, source: Path):
    nb = copy.deepcopy(solved if cheat.base == "solved" else unsolved)
    stem = str(source)[: -len(".ipynb")]
    cells = [new_code_cell(text.replace("{source_stem!r}", repr(stem)).strip())
             for text in cheat.cells]
    at = 0
    if cheat.after_cell is not None:
        at = next(i for i, c in enumerate(nb.cells) if grade_id_of(c) == cheat.after_cell) + 1
    nb.cells[at:at] = cells
    return nb


def _write_folder(folder: Path, source: Path, cheats: list[Cheat]) -> None:
    solved = instructor_notebook()
    unsolved = make_student_notebook(solved)
    folder.mkdir()
    nbformat.write(solved, folder / "honest_solved.ipynb")
    nbformat.write(unsolved, folder / "honest_unsolved.ipynb")
    for cheat in cheats:
        nbformat.write(_submission(cheat, solved, unsolved, source), folder / f"{cheat.name}.ipynb")


@pytest.fixture(scope="module")
def fixture_source(tmp_path_factory):
    install_setup()
    path = tmp_path_factory.mktemp("fixture") / "fixture_instructor.ipynb"
    nbformat.write(instructor_notebook(), path)
    return path


@pytest.fixture(scope="module")
def corpus_rows(fixture_source, tmp_path_factory):
    """Grade the honest notebooks and every cheat once; the CSV rows by student."""
    folder = tmp_path_factory.mktemp("corpus") / "submitted"
    _write_folder(folder, fixture_source, CORPUS)
    out = folder.parent / "grades.csv"
    grade_submissions(folder, source=fixture_source, out=out, timeout=60,
                      watch_repository=False)
    with open(out, newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_the_corpus_has_at_least_eight_cheats_each_explained():
    assert len(CORPUS) >= 8
    for cheat in CORPUS:
        assert cheat.doc and cheat.expect, cheat.name
        assert set(cheat.expect) <= {"points", "review", "notes", "feedback"}, cheat.name
        assert cheat.expect.get("points") or cheat.expect.get("review"), cheat.name


def test_honest_notebooks_are_graded_unchanged(corpus_rows):
    solved, unsolved = corpus_rows["honest_solved"], corpus_rows["honest_unsolved"]
    assert (solved["total"], solved["max_points"], solved["status"]) == ("6", "6", "ok")
    assert solved["reason"] == solved["feedback"] == solved["review"] == ""
    assert (unsolved["total"], unsolved["status"], unsolved["review"]) == ("0", "ok", "")
    assert "NotImplementedError" in unsolved["feedback"]
    assert "answer: no file answer.txt" in unsolved["feedback"]


@pytest.mark.parametrize("cheat", CORPUS, ids=[c.name for c in CORPUS])
def test_cheat_gets_its_expected_outcome(cheat, corpus_rows):
    row = corpus_rows[cheat.name]
    for grade_id, points in cheat.expect.get("points", {}).items():
        assert float(row[grade_id]) == points, (grade_id, row)
    for column, key in (("review", "review"), ("reason", "notes"), ("feedback", "feedback")):
        for text in cheat.expect.get(key, []):
            assert text in row[column], (text, row[column])
    assert row["status"] == "ok", row["reason"]


def test_a_process_that_escaped_the_kernel_was_killed(corpus_rows, alive):
    review = corpus_rows["c08_fork_outlives_kernel"]["review"]
    pids = [int(p) for p in re.findall(r"pid (\d+)", review)]
    assert pids
    time.sleep(0.2)
    assert not any(alive(p) for p in pids)


# ----------------------------------------------------------------------------- static review

@pytest.mark.parametrize("code, reason, detail", [
    ("get_ipython().input_transformers_cleanup.insert(0, f)", REASONS[0],
     "get_ipython().input_transformers_cleanup"),
    ("ip = get_ipython()\nip.events.register('post_run_cell', f)", REASONS[0], "ip.events"),
    ("import sys as s\ns.setprofile(f)", REASONS[1], "s.setprofile"),
    ("import threading\nthreading.settrace(f)", REASONS[1], "threading.settrace"),
    ("import sys\nsys.meta_path.insert(0, Finder())", REASONS[2], "sys.meta_path"),
    ("__import__('sy' + 's')", REASONS[4], "__import__() of a computed module name"),
    ("vars()['x'] = 1", REASONS[4], "vars"),
    ("f.__globals__['y'] = 2", REASONS[6], "f.__globals__"),
    ("().__class__.__base__.__subclasses__()", REASONS[6], "__subclasses__"),
    ("x = eval('1 + 1')", REASONS[5], "eval"),
    ("import pickle\npickle.loads(b'')", REASONS[5], "import pickle"),
    ("torch.load('m.pt', weights_only=False)", REASONS[5], "torch.load(..., weights_only=False)"),
    ("import mymodule_written_by_me", REASONS[5], "not installed"),
    ("get_ipython().set_custom_exc((Exception,), f)", REASONS[7], "set_custom_exc"),
    ("import os\nos.kill(os.getppid(), 9)", REASONS[8], "os.kill"),
    ("!cat /etc/hostname", REASONS[8], "!cat /etc/hostname"),
    ("%%bash\necho hi", REASONS[8], "%bash"),
    ("%time open('../notebooks/08_assignment.ipynb')", REASONS[10], "'../notebooks/08_assignmen"),
    ("%load_ext autoreload", REASONS[2], "%load_ext"),
    ("print(In[3])", REASONS[13], "In"),
    ("def print(*a):\n    pass", REASONS[3], "redefines the builtin print"),
    ("x = (", REASONS[12], "line 1"),
])
def test_cell_findings_name_the_reason_and_the_code(code, reason, detail):
    found = cell_findings(code)
    assert any(f.reason == reason and detail in f.detail for f in found), found


@pytest.mark.parametrize("code", [
    "model.modules()", "for name, m in model.named_modules():\n    pass",
    "torch.compile(model)", "class D(Dataset):\n    def __len__(self):\n        return 3\n"
    "    def __getitem__(self, i):\n        return super().__getitem__(i)",
    "%time x = sum(range(10))", "from IPython.display import display\ndisplay(1)",
    "with open('predictions.csv', 'w') as f:\n    f.write('id,label')",
    "id = 3\nsum = 0\ninput = 'x'",
])
def test_honest_code_is_not_flagged(code):
    assert cell_findings(code) == []


def test_review_skips_the_instructors_own_cells_and_grade_cells():
    nb = nbformat.v4.new_notebook(cells=[
        new_code_cell("import subprocess"),
        new_code_cell("import subprocess  "),
        new_code_cell("eval('1')", metadata={"nbgrader": {"grade_id": "g", "grade": True}}),
    ])
    assert review_flags(nb, ["g"], known_sources=["import subprocess"]) == []
    assert review_flags(nb, ["g"]) == [
        "cell 0 starts processes or threads, sends signals or ends the kernel: import subprocess",
        "cell 1 starts processes or threads, sends signals or ends the kernel: import subprocess"]
    with pytest.raises(TypeError, match="source must be a str"):
        cell_findings(None)


def test_honest_lessons_raise_no_review_flags_against_themselves():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        graded = [grade_id_of(c) for c in nb.cells if is_grade_cell(c)]
        known = [c.source for c in nb.cells if c.cell_type == "code"]
        assert review_flags(make_student_notebook(nb), graded, known) == [], path.name
        assert review_flags(nb, graded, known) == [], path.name


# ----------------------------------------------------------------------------- hook reports

def test_compare_names_what_changed_and_tolerates_library_callbacks():
    base = {"trace": [None, None, None, None],
            "transformers": {"cleanup": ["a"], "post": [], "ast": [], "manager": ["m"]},
            "events": {"post_execute": ["IPython.core.displaypub.DisplayPublisher.f"]},
            "meta_path": ["_frozen_importlib.BuiltinImporter"], "path_hooks": [],
            "builtins": {"len": 1, "exec": 2}, "modules": {"sys": 5, "ast": None},
            "shell": {"class": [1]}, "kernel": {"class": [2]}, "streams": [[1]]}
    same = copy.deepcopy(base)
    same["events"]["post_execute"].append("matplotlib_inline.backend_inline.flush_figures")
    same["modules"]["ast"] = 99  # imported later: not a change
    same["builtins"]["new_name"] = 7
    assert compare(base, same) == []
    bad = copy.deepcopy(base)
    bad["events"]["post_execute"].append("__main__.spy!")
    bad["meta_path"].insert(0, "__main__.Finder!")
    bad["builtins"]["exec"] = 3
    bad["shell"] = {"class": [9]}
    bad["namespace_builtins"] = False
    assert compare(base, bad) == [
        "IPython post_execute callbacks gained __main__.spy!",
        "sys.meta_path gained __main__.Finder!", "builtins replaced: exec",
        "IPython shell methods replaced", "the notebook's __builtins__ replaced"]
    assert compare(base, bad, identities=False) == [
        "IPython post_execute callbacks gained __main__.spy!",
        "sys.meta_path gained __main__.Finder!"]


def test_cell_problems_require_a_report_that_matches():
    sent = "x = 1\n"
    digest = hashlib.sha256(b"x = 1").hexdigest()
    base = {"trace": [None]}

    def evidence(stdout, status="ok"):
        return CellEvidence(status, stdout, "MARK", "[tag]", sent)

    good = f'[tag] {{"trace": [null], "cell": "{digest}"}}\nMARK\n'
    assert cell_problems(evidence(good), base) == []
    assert cell_problems(evidence(good.replace(digest, "0" * 64)), base) == [
        "the cell's code was rewritten before it ran (an input transformer)"]
    assert cell_problems(evidence(good), None) == [
        "the grader has no baseline report to compare with (the kernel misbehaved before the "
        "first cell)"]
    assert "did not run" in cell_problems(evidence("hello\n"), base)[0]
    assert cell_problems(evidence("Traceback\n", "error"), base) == []
    assert read_report("[tag] not json\n", "[tag]") is None


def test_the_grade_cell_reaches_exec_without_the_notebooks_names():
    source = grade_cell_source(GradeCell("g", 1, "assert True", False, ()), "MARK", "[tag]")
    assert "BuiltinImporter" in source and "MARK" in source and "[tag]" in source
    code = compile(source, "<cell>", "exec")
    assert not {"exec", "globals", "__builtins__"} & set(code.co_names)


def test_grading_notebook_starts_with_the_baseline_and_hides_judged_cells(fixture_source):
    plan = grading_plan(fixture_source)
    student = make_student_notebook(instructor_notebook())
    markers = {c.grade_id: f"M-{c.grade_id}" for c in plan.cells}
    nb, index, _ = build_grading_notebook(student, plan, markers, "[base]")
    assert "report(" in nb.cells[0].source and "[base]" in nb.cells[0].source
    judged = nb.cells[index["fx-answer-check"]].source
    assert "judged by the grader" in judged and "M-fx-answer-check" not in judged
    assert "double(21)" not in judged
    assert index["fx-double-check"] == 4  # the baseline cell shifted every cell by one


def test_event_flags_group_by_cell_and_kind():
    lines = [[4, "starts a process", "('ls',)"], [4, "starts a process", "('ls',)"],
             [6, "sets a trace function", ""], [99, "opens a private file", "/x.ipynb"]]
    assert event_flags(lines, {4: 2, 6: None}) == [
        "cell 2 starts a process (seen while it ran): ('ls',)",
        "a grade cell sets a trace function (seen while it ran)",
        "the notebook opens a private file (seen while it ran): /x.ipynb"]


@pytest.mark.parametrize("event, args, expected", [
    ("open", ("/x/notebooks/08.ipynb", "r", 0), "opens a private file"),
    ("open", ("/course/lesson_utils/checks/_core.py", "w", 0), "writes into a protected folder"),
    ("open", ("/course/lesson_utils/checks/_core.py", None, os.O_WRONLY), "writes into"),
    ("open", ("/course/lesson_utils/checks/_core.py", "rb", 0), None),
    ("open", ("/secret/alice.txt", "r", 0), "opens a private file"),
    ("open", ("/proc/1/mem", "rb", 0), "reads another process's files"),
    ("open", ("/proc/stat", "r", 0), None),
    ("open", (f"/proc/{os.getpid()}/status", "r", 0), None),
    ("subprocess.Popen", ("/sbin/ldconfig", ["/sbin/ldconfig", "-p"], None, None), None),
    ("subprocess.Popen", (None, ["./ldconfig"], None, None), "starts a process"),
    ("os.system", ("cat x",), "runs a shell command"),
    ("os.fork", (), "forks the kernel"),
    ("os.rename", ("/course/a.py", "/tmp/b"), "changes a protected folder"),
    ("os.listdir", ("/secret",), "lists a private folder"),
    ("object.__setattr__", (print, "__code__", None), "replaces a function's code"),
    ("object.__setattr__", (int, "__doc__", None), None),
    ("pickle.find_class", ("os", "system"), "unpickles a function"),
    ("pickle.find_class", ("numpy", "ndarray"), None),
    ("sys.settrace", (), "sets a trace function"),
])
def test_the_audit_sentinel_reports_what_matters(event, args, expected):
    found = _sentinel._describe(event, args, ("/course",), ("/secret",))
    assert (found[0] if found else None) == expected or (
        expected is not None and found is not None and found[0].startswith(expected)), found


def test_audit_channel_keeps_what_was_written_before_the_writer_went_away(tmp_path):
    with AuditChannel(tmp_path) as channel:
        env = channel.env(protected=[tmp_path / "course"], private=[tmp_path / "secret"])
        fd = os.open(env["LESSON_GRADER_CHANNEL"], os.O_WRONLY)
        os.write(fd, b'[null, "hello", "7"]\n[2, "forks the kernel", ""]\nnot json\n')
        os.close(fd)
    assert channel.connected and channel.lines == [[2, "forks the kernel", ""]]
    assert not channel.path.exists()


# ----------------------------------------------------------------------------- judging outside

def test_read_submitted_text_refuses_links_pipes_and_huge_files(tmp_path):
    (tmp_path / "ok.csv").write_text("id,label\n")
    assert read_submitted_text(tmp_path, "ok.csv") == "id,label\n"
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "link.csv").symlink_to(tmp_path / "ok.csv")
    (tmp_path / "big.csv").write_bytes(b"x" * 11)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe")
    for name, message in [("pipe.csv", "not a regular file"), ("link.csv", "not a regular file"),
                          ("missing.csv", "did not write it"), ("bin.csv", "not UTF-8")]:
        with pytest.raises(ValueError, match=message):
            read_submitted_text(tmp_path, name)
    with pytest.raises(ValueError, match="more than 10"):
        read_submitted_text(tmp_path, "big.csv", max_bytes=10)
    with pytest.raises(ValueError, match="plain file name"):
        read_submitted_text(tmp_path, "../ok.csv")
    with pytest.raises(TypeError, match="name must be a str"):
        read_submitted_text(tmp_path, 3)


def test_check_judges_rejects_what_a_setup_should_not_return():
    with pytest.raises(TypeError, match="mapping of judge names to callables"):
        check_judges({"a": 1}, {"g": "a"})
    assert check_judges({"a": print}, {}) == {}


@pytest.fixture(scope="module")
def secret_capstone(tmp_path_factory):
    """The real capstone's grading setup, with a known secret so the test can check it (the
    public training images are left out: they take seconds to write and hide nothing)."""
    folder = tmp_path_factory.mktemp("capstone-grading")
    secret = 2**127 + 12345
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(capstone, "export_image_folder", lambda dataset, root: Path(root).mkdir(
            parents=True))
        judges = capstone.prepare_grading(folder, secret)
    return folder, secret, judges["hidden_test_f1"]


def _predictions(folder: Path, labels: list[int], ids: list[str]) -> None:
    rows = ["id,label"] + [f"{i},{capstone.CLASSES[y]}" for i, y in zip(ids, labels,
                                                                          strict=True)]
    (folder / capstone.PREDICTIONS).write_text("\n".join(rows) + "\n")


def test_the_capstone_secret_is_nowhere_on_disk(secret_capstone):
    folder, secret, judge = secret_capstone
    labels = capstone.capstone_test_labels(secret)
    texts = [secret.to_bytes(16, "big").hex(), str(secret), hex(secret)]
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(t.encode() in data for t in texts), path
    names = sorted(p.name for p in (folder / capstone.DATA_DIR / "test").iterdir())
    assert names[-1] == "ids.csv" and len(names) == len(labels) + 1
    assert "labels" not in repr(judge) and str(labels[:20])[1:-1] not in repr(judge)
    assert judge.labels == tuple(labels) and capstone.SECRET_BITS >= 128


def test_the_capstone_judge_scores_only_against_the_secret_labels(secret_capstone):
    folder, secret, judge = secret_capstone
    ids = list(judge.ids)
    _predictions(folder, capstone.capstone_test_labels(secret), ids)
    assert judge(folder).passed
    _predictions(folder, capstone.capstone_test_labels(), ids)  # the public labels
    verdict = judge(folder)
    assert not verdict.passed and f"below the bar {capstone.HIDDEN_TEST_BAR}" in verdict.message
    ids_file = folder / capstone.DATA_DIR / "test" / "ids.csv"
    original = ids_file.read_text()
    ids_file.write_text("id\n000.png\n")  # the judge keeps the ids it wrote
    (folder / capstone.PREDICTIONS).write_text("id,label\n000.png,arrow\n")
    assert "599 missing" in judge(folder).message
    ids_file.write_text(original)
    (folder / capstone.PREDICTIONS).unlink()
    (folder / capstone.PREDICTIONS).symlink_to(ids_file)
    assert "not a regular file" in judge(folder).message
    (folder / capstone.PREDICTIONS).unlink()


def test_prepare_grading_draws_a_fresh_secret_every_time(tmp_path, monkeypatch):
    seeds = []
    monkeypatch.setattr(capstone, "make_capstone_data",
                        lambda root, test_seed: seeds.append(test_seed) or _fake_root(root))
    for k in range(2):
        capstone.prepare_grading(tmp_path / str(k))
    assert len(set(seeds)) == 2 and all(s.bit_length() > 64 for s in seeds)
    with pytest.raises(ValueError, match="secret must be an int >= 0 or None"):
        capstone.prepare_grading(tmp_path, -1)


def _fake_root(root: Path) -> Path:
    (root / "test").mkdir(parents=True)
    (root / "test" / "ids.csv").write_text("id\n000.png\n")
    return root


def test_the_capstones_visible_check_refuses_a_test_set_that_is_not_public(secret_capstone):
    folder, secret, judge = secret_capstone
    _predictions(folder, capstone.capstone_test_labels(secret), list(judge.ids))
    with pytest.raises(CheckFailed, match="not the public test set"):
        check_hidden_test_f1(folder / capstone.PREDICTIONS,
                             data_root=folder / capstone.DATA_DIR)


# ----------------------------------------------------------------------------- processes

def test_kill_escaped_kills_a_double_forked_process_and_only_that():
    with grader_guards() as on:
        if not on:
            pytest.skip("prctl is not available on this platform")
        before = child_pids()
        keep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        before.add(keep.pid)
        subprocess.run([sys.executable, "-c",
                        "import os, subprocess, sys\nsubprocess.Popen([sys.executable, '-c', "
                        "'import time; time.sleep(30)'], start_new_session=True)"], check=True)
        time.sleep(0.3)
        killed = kill_escaped(before)
        try:
            assert len(killed) == 1 and "time.sleep(30)" in killed[0]
            assert keep.poll() is None
        finally:
            keep.kill()
            keep.wait()


# ----------------------------------------------------------------------------- --isolate

ISOLATION = isolation_problem()
needs_isolation = pytest.mark.skipif(ISOLATION is not None,
                                     reason=f"this machine refuses namespaces: {ISOLATION}")


def test_isolation_problem_names_the_fallbacks_or_is_none():
    assert ISOLATION is None or ("dedicated user" in ISOLATION and "container" in ISOLATION)


@needs_isolation
def test_an_isolated_kernel_has_no_network_home_course_or_grader(tmp_path, fixture_source):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    course = tmp_path / "course"
    course.mkdir()
    probe = (
        "import os, socket, json\nfound = {}\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    found['network'] = 'connected'\nexcept OSError as e:\n    found['network'] = 'no'\n"
        "open(os.path.expanduser('~/planted'), 'w').write('x')\n"
        f"try:\n    open({str(course / 'x.py')!r}, 'w')\n    found['course'] = 'writable'\n"
        "except OSError:\n    found['course'] = 'read-only'\n"
        f"found['notebook'] = os.path.exists({str(fixture_source)!r})\n"
        "found['parent'] = os.getppid()\nfound['home'] = os.environ['HOME']\n"
        "found['real_home'] = os.path.exists(" + repr(str(Path.home())) + " + '/.bashrc')\n"
        "print(json.dumps(found))")
    nb = nbformat.v4.new_notebook(cells=[new_code_cell(probe)])
    try:
        run = run_cells(nb, cwd=tmp_path, timeout=60, keep_outputs={0},
                        sandbox=Sandbox(readonly=(str(course),)))
    finally:
        listener.close()
    found = json.loads(run.cells[0].stdout)
    assert found == {"network": "no", "course": "read-only", "notebook": False, "parent": 0,
                     "home": "/tmp/home", "real_home": False}, found
    assert not (Path.home() / "planted").exists()


@needs_isolation
def test_grade_isolate_defeats_reading_the_notebook_and_escaping(fixture_source, tmp_path):
    cheats = [c for c in CORPUS if c.name in ("c06_reads_instructor_notebook",
                                              "c08_fork_outlives_kernel")]
    folder = tmp_path / "submitted"
    _write_folder(folder, fixture_source, cheats)
    (folder / "honest_unsolved.ipynb").unlink()
    rows = {r.student: r for r in grade_submissions(folder, source=fixture_source, timeout=60,
                                                    watch_repository=False, isolate=True)}
    assert rows["honest_solved"].points == 6 and rows["honest_solved"].reason == ""
    assert rows["c06_reads_instructor_notebook"].points == 0
    fork = rows["c08_fork_outlives_kernel"].notebooks[0]
    assert not any("left processes" in r for r in fork.review), fork.review
    assert any("forks the kernel" in r for r in fork.review)


def test_grade_isolate_fails_clearly_where_isolation_is_impossible(fixture_source, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(grader, "isolation_problem", lambda: "cannot isolate: no unshare")
    (tmp_path / "s").mkdir()
    with pytest.raises(RuntimeError, match="no unshare"):
        grade_submissions(tmp_path / "s", source=fixture_source, isolate=True)

