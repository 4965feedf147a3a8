"""Every lesson ends with an EN/KO glossary table; one English term has one Korean term course-wide.

The tables have three columns (English | 한국어 | meaning here). A cell may list several terms,
separated by `` / `` or ``,`` (outside parentheses); when the English and Korean cells list the
same number of terms they are paired one to one. A term is compared without its parenthetical
(``미세 조정 (파인튜닝)`` and ``미세 조정`` are the same term), case- and plural-insensitively in
English.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
HEADING = re.compile(r"^#+ .*glossary", re.IGNORECASE | re.MULTILINE)

# Translations a Korean reader finds wrong or unnatural (issue 16): English term -> (the wrong
# Korean, what to write instead). 에폭 is banned everywhere: the course writes 에포크.
BANNED = {
    "criterion": ("기준", "criterion (손실 함수)"),
    "support": ("지지도", "support (샘플 수)"),
    "patience": ("인내", "patience (허용 에포크 수)"),
    "reduction": ("축소", "reduction"),
    "relevance": ("적합도", "관련도"),
    "running statistic": ("이동 통계", "이동 평균/분산"),
    "test-time augmentation": ("테스트 시점", "테스트 시 증강"),
}
BANNED_EVERYWHERE = {"에폭": "에포크"}


def glossary_rows(path: Path) -> list[list[str]]:
    """The rows (header first) of the Markdown table after a notebook's glossary heading."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        heading = HEADING.search(source) if cell["cell_type"] == "markdown" else None
        if heading:
            lines = source[heading.end():].splitlines()
            table = [line.strip() for line in lines if line.strip().startswith("|")]
            rows = [[part.strip() for part in line.strip("|").split("|")] for line in table]
            return [row for row in rows if not all(set(part) <= set("-: ") for part in row)]
    raise AssertionError(f"{path.name}: no glossary heading")


def split_terms(cell: str) -> list[str]:
    """Split ``"a / b, c (d, e)"`` into ``["a", "b", "c (d, e)"]`` (not inside parentheses)."""
    terms, depth, current = [], 0, ""
    i = 0
    while i < len(cell):
        ch = cell[i]
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and (ch == "," or cell.startswith(" / ", i)):
            terms.append(current.strip())
            current = ""
            i += 3 if ch == " " else 1
            continue
        current += ch
        i += 1
    return [t for t in [*terms, current.strip()] if t]


def bare(term: str) -> str:
    """A term without parentheticals and backticks, spaces collapsed."""
    term = re.sub(r"\([^()]*\)", " ", term.replace("`", ""))
    return " ".join(term.split())


def english_key(term: str) -> str:
    words = bare(term).lower().split()
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
                    for w in words)


def term_pairs(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for row in glossary_rows(path)[1:]:
        english, korean = split_terms(row[0]), split_terms(row[1])
        if len(english) != len(korean):
            english, korean = [row[0]], [row[1]]
        pairs += list(zip(english, korean, strict=True))
    return pairs


def test_split_terms_and_keys():
    assert split_terms("backend (gloo, NCCL) / rank, x") == ["backend (gloo, NCCL)", "rank", "x"]
    assert split_terms("이동 평균/분산 (running mean/var)") == ["이동 평균/분산 (running mean/var)"]
    assert english_key("Logits (`nn.Linear`)") == english_key("logit") == "logit"
    assert english_key("loss") == "loss"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_glossary_has_english_korean_and_meaning_columns(path):
    rows = glossary_rows(path)
    header = [h.lower() for h in rows[0]]
    assert header[:1] == ["english"] and "한국어" in header and "meaning here" in header, (
        f"{path.name}: glossary header {rows[0]} lacks English | 한국어 | meaning here")
    assert len(rows) > 3, f"{path.name}: glossary has only {len(rows) - 1} rows"
    for row in rows[1:]:
        assert len(row) == len(header) and all(row), f"{path.name}: incomplete row {row}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_glossary_avoids_banned_korean_terms(path):
    for english, korean in term_pairs(path):
        wrong, instead = BANNED.get(english_key(english), (None, None))
        assert wrong is None or wrong not in korean, (
            f"{path.name}: {english!r} -> {korean!r} uses {wrong!r}; write {instead!r}")
        for wrong, instead in BANNED_EVERYWHERE.items():
            assert wrong not in korean, f"{path.name}: {korean!r} uses {wrong!r}; write {instead!r}"


def test_one_korean_term_per_english_term_across_lessons():
    seen: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in NOTEBOOKS:
        for english, korean in term_pairs(path):
            seen[english_key(english)][bare(korean)].append(path.name[:2])
    clashes = {en: dict(ko) for en, ko in seen.items() if len(ko) > 1}
    assert not clashes, f"English terms with several Korean terms (term: {{Korean: lessons}}): {clashes}"
    assert len(seen) > 100  # the parser found the tables, not a handful of rows


def test_gradient_is_그래디언트_with_기울기_once_as_a_parenthetical():
    korean = [row[1] for path in NOTEBOOKS for row in glossary_rows(path)[1:]]
    with_기울기 = [cell for cell in korean if "기울기" in cell]
    assert len(with_기울기) <= 1, f"기울기 in {with_기울기}: write 그래디언트"
    assert all("기울기" not in bare(cell) for cell in with_기울기), (
        f"기울기 allowed only as a parenthetical: {with_기울기}")
