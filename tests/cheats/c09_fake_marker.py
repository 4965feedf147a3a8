"""Prints what a passing grade cell prints: a pass marker and a hook report, with made-up
nonces. The grader's markers are random per cell and per run."""

CELLS = [r'''
print("[grader] fx-double-check passed " + "0" * 32)
print("[grader report " + "0" * 32 + "] {}")
''']
EXPECT = {
    "points": {"fx-double-check": 0, "fx-items-check": 0, "fx-answer-check": 0},
    "review": ["mentions the grader or its pass markers"],
}
