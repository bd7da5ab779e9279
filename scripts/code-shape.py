#!/usr/bin/env python3
"""Issue 18's two figures: lines of a crate's `src/` without its unit-test
modules, and the longest functions (outside `#[cfg(test)] mod … { }`).

    scripts/code-shape.py crates/lifeboat/src [--top N]

A function's length is counted from its `fn` line to the closing brace at
the same indentation, so it is an estimate for unusual formatting; rustfmt's
layout (which CI enforces) is what it expects.
"""
import os
import re
import sys


def without_test_modules(src: str) -> list[str]:
    lines, out, i = src.split("\n"), [], 0
    while i < len(lines):
        if lines[i].strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r"\s*mod \w+ \{", lines[i + 1]):
            depth, j = 0, i + 1
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                if depth <= 0:
                    break
                j += 1
            i = j + 1
            continue
        out.append(lines[i])
        i += 1
    return out


def main() -> int:
    args = sys.argv[1:]
    top = 12
    if "--top" in args:
        k = args.index("--top")
        top = int(args[k + 1])
        del args[k : k + 2]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    total, fns = 0, []
    for root in args:
        for dirpath, _, files in os.walk(root):
            for name in sorted(files):
                if not name.endswith(".rs"):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    lines = without_test_modules(f.read())
                total += len(lines)
                for k, line in enumerate(lines):
                    m = re.match(r"^(\s*)(pub(\([\w:]+\))? )?(async )?(unsafe )?fn (\w+)", line)
                    if not m:
                        continue
                    closing = m.group(1) + "}"
                    for e in range(k + 1, len(lines)):
                        if lines[e] == closing:
                            fns.append((e - k + 1, path, m.group(6)))
                            break
    print(f"lines (unit-test modules excluded): {total}")
    for n, path, name in sorted(fns, reverse=True)[:top]:
        print(f"{n:5} {path} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
