"""Measures the shape of a package for refactor notes: lines, longest function, locks, cross-object reaches."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REACH = re.compile(r"\bself\.(\w+)\.(\w+)\b(?!\s*\()")  # self.a.b not called: reading another object's field


def main(root: str) -> None:
    lines = longest = locks = reaches = 0
    where = ""
    for path in sorted(Path(root).glob("*.py")):
        text = path.read_text()
        lines += len(text.splitlines())
        locks += len(re.findall(r"\b(?:threading\.)?R?Lock\(\)", text))
        reaches += len(REACH.findall(text))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > longest:
                    longest, where = size, f"{path.name}:{node.name}"
    print(f"lines={lines} longest={longest} ({where}) locks={locks} cross_object_reaches={reaches}")


if __name__ == "__main__":
    main(sys.argv[1])
