"""An AST transformer keeps the grader's code but swaps the instructor's checks (a string in the
grade cell) for ``pass``, so the grader's own code prints the pass marker."""

CELLS = [r'''
import ast
import re


class Hollow(ast.NodeTransformer):
    def visit_Constant(self, node):
        if isinstance(node.value, str) and "run_grade_cell(" in node.value:
            node.value = re.sub(r"run_grade_cell\((['\"]).*?\1, ", "run_grade_cell('pass', ",
                                node.value, count=1, flags=re.S)
        return node


get_ipython().ast_transformers.append(Hollow())
''']
EXPECT = {
    "points": {"fx-double-check": 0, "fx-items-check": 0},
    "review": ["grade cell fx-double-check: IPython's ast transformers gained __main__.Hollow!",
               "reaches interpreter internals", "hooks into IPython"],
}
