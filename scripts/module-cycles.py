#!/usr/bin/env python3
"""Lists the cycles among a crate's top-level modules.

    scripts/module-cycles.py [--with-tests] [CRATE_SRC_DIR ...]
    scripts/module-cycles.py --self-test

With no directory it reads every crates/*/src of the workspace. Module `a`
uses module `b` when code under `src/a.rs` or `src/a/` names `b` through
`use crate::b…`, a `crate::b::…` path, `super::…` that climbs to the crate
root and down into `b`, or a name the crate root re-exports from `b`
(`crate::Repository` is `repo`'s). Submodules count as their top-level
module (`prune/plan.rs` is `prune`). Comments, string literals, `$crate`
paths in macros (a `#[macro_export]` macro called as `crate::m!` is not
traced to the module defining it) and, unless --with-tests, `#[cfg(test)]` items and
`#[cfg(test)] mod x;` files are left out: a unit test may reach into the
module it tests from anywhere without making a design cycle.

A cycle is a strongly connected set of two or more top-level modules; each
is printed with one example reference (file:line) per edge inside it, so
the fix can start from the line that closes the loop. Exits 1 when any
cycle is found. scripts/check-workspace.py imports `cycles()` from here to
fail CI on a cycle in the library crates, after `self_test()` (the scanner
run on a small made-up crate holding each path form above) has passed.

Written by hand (a ~200-line scanner) rather than with a Rust parser crate:
the check must run in CI next to `cargo metadata` without building
anything, and the few path forms above are all it needs to recognise.
"""
import os
import re
import sys

IDENT = re.compile(r"(?:r#)?[A-Za-z_][A-Za-z0-9_]*")


def raw_string_start(text, i):
    """Whether the `r` at i begins a raw string (`r"`, `br"`), not an
    identifier ending in r."""
    before = text[max(0, i - 2):i]
    if before.endswith("b"):
        before = before[:-1]
    return not re.search(r"[A-Za-z0-9_]$", before) if before else True


def strip_code(text):
    """The text with comments, string and char literals blanked to spaces
    (newlines kept, so offsets and line numbers still match)."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 260]) and raw_string_start(text, i):
            # r"…", r#"…"#, br"…": no escapes inside.
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            blank(i, end)
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            m = re.match(r"'(\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:i + 16])
            if m:
                blank(i, i + m.end())
                i += m.end()
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def matching_brace(code, open_at):
    """Offset just past the `}` matching the `{` at open_at."""
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def item_end(code, start):
    """Offset just past the item starting at `start`: its `;` or its
    balanced `{…}` (plus a `;` right after, as in `use a::{b};`)."""
    j = start
    while j < len(code):
        if code[j] == ";":
            return j + 1
        if code[j] == "{":
            k = matching_brace(code, j)
            m = re.match(r"\s*;", code[k:])
            return k + m.end() if m else k
        j += 1
    return len(code)


def skip_attrs(code, pos):
    """Offset of the item after any attributes starting at pos."""
    while True:
        m = re.compile(r"\s*#\[").match(code, pos)
        if not m:
            return pos
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"[": 1, "]": -1}.get(code[j], 0)
            j += 1
        pos = j


def test_spans(code):
    """(start, end) spans of `#[cfg(test)]` items, and the names of
    `#[cfg(test)] mod x;` children (test-only files)."""
    spans, test_children = [], set()
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        item = skip_attrs(code, m.end())
        end = item_end(code, item)
        spans.append((m.start(), end))
        decl = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT.pattern + r")\s*;", code[item:end])
        if decl:
            test_children.add(decl.group(1))
    return spans, test_children


def parse_tree(code, pos):
    """Parses a use-tree / path starting at pos (just after `prefix::`).
    Returns (list of segment lists, alias of a single path or None)."""
    paths = []

    def tree(p, prefix):
        p = skip_ws(p)
        if p < len(code) and code[p] == "{":
            p += 1
            while True:
                p = skip_ws(p)
                if p >= len(code) or code[p] == "}":
                    return p + 1
                p = tree(p, prefix)
                p = skip_ws(p)
                if p < len(code) and code[p] == ",":
                    p += 1
        if p < len(code) and code[p] == "*":
            paths.append((prefix + ["*"], None))
            return p + 1
        m = IDENT.match(code, p)
        if not m:
            paths.append((prefix, None))
            return p
        seg = m.group(0).removeprefix("r#")
        p = m.end()
        q = skip_ws(p)
        if code.startswith("::", q):
            q2 = skip_ws(q + 2)
            if q2 < len(code) and code[q2] == "<":  # turbofish: path ends here
                paths.append((prefix + [seg], None))
                return q2
            return tree(q + 2, prefix + [seg])
        alias = re.compile(r"\s+as\s+(" + IDENT.pattern + r")").match(code, p)
        if alias:
            paths.append((prefix + [seg], alias.group(1)))
            return alias.end()
        paths.append((prefix + [seg], None))
        return p

    def skip_ws(p):
        while p < len(code) and code[p].isspace():
            p += 1
        return p

    tree(pos, [])
    return paths


PATH_START = re.compile(r"(?<![\w$:])((?:super\s*::\s*)+|crate\s*::\s*|self\s*::\s*)")


def references(code):
    """(offset, kind, supers, path segments, alias) for every path that
    starts with crate::, super:: or self::."""
    for m in PATH_START.finditer(code):
        head = m.group(1)
        kind = "crate" if head.startswith("crate") else "self" if head.startswith("self") else "super"
        supers = head.count("super")
        for segs, alias in parse_tree(code, m.end()):
            yield m.start(), kind, supers, segs, alias


def inline_mods(code):
    """(start, end, name) of every `mod name { … }` in the file."""
    for m in re.finditer(r"(?<![\w])mod\s+(" + IDENT.pattern + r")\s*\{", code):
        yield m.start(), matching_brace(code, m.end() - 1), m.group(1)


def module_path(src, path):
    """['prune', 'plan'] for src/prune/plan.rs, ['prune'] for src/prune/mod.rs,
    [] for the crate root."""
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return []
    return rel


def crate_files(src):
    root = os.path.join(src, "lib.rs")
    if not os.path.exists(root):
        root = os.path.join(src, "main.rs")
    files = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if os.path.relpath(os.path.join(dirpath, d), src) != "bin")
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            # The other crate root beside lib.rs (src/main.rs) is its own crate.
            if f.endswith(".rs") and (full == root or dirpath != src or f not in ("lib.rs", "main.rs")):
                files.append(full)
    return root, files


def module_graph(src, with_tests=False):
    """{module: {used module: (file, line) of one reference}} for the crate
    whose sources are in `src`, plus the list of top-level module names."""
    root, files = crate_files(src)
    parsed = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            code = strip_code(f.read())
        parsed[path] = code
    # Test-only files: children declared `#[cfg(test)] mod x;`.
    test_files = set()
    if not with_tests:
        for path, code in parsed.items():
            mp = module_path(src, path)
            for child in test_spans(code)[1]:
                test_files.add(tuple(mp + [child]))
    tops = sorted({module_path(src, p)[0] for p in files if module_path(src, p)})
    # Names the crate root brings in: `pub use repo::Repository` makes
    # crate::Repository mean repo's.
    reexports = {}
    root_code = parsed[root]
    for m in re.finditer(r"(?<![\w])use\s+", root_code):
        for segs, alias in parse_tree(root_code, m.end()):
            if segs and segs[0] in ("crate", "self"):
                segs = segs[1:]
            if len(segs) >= 2 and segs[0] in tops and segs[-1] not in ("*", "self"):
                reexports[alias or segs[-1]] = segs[0]
    graph = {t: {} for t in tops}
    for path, code in parsed.items():
        mp = module_path(src, path)
        if not mp:
            continue
        if any(tuple(mp[: k + 1]) in test_files for k in range(len(mp))):
            continue
        skip = [] if with_tests else test_spans(code)[0]
        mods = list(inline_mods(code))
        for off, kind, supers, segs, _ in references(code):
            if any(a <= off < b for a, b in skip):
                continue
            here = mp + [name for a, b, name in mods if a <= off < b]
            if kind == "crate":
                absolute = segs
            elif kind == "self":
                absolute = here + segs
            else:
                if supers > len(here):
                    continue
                absolute = here[: len(here) - supers] + segs
            if not absolute:
                continue
            first = absolute[0]
            target = first if first in graph else reexports.get(first)
            if target and target != mp[0]:
                line = code.count("\n", 0, off) + 1
                graph[mp[0]].setdefault(target, (os.path.relpath(path), line))
    return graph


def strongly_connected(graph):
    """Tarjan's algorithm: the components with two or more modules."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def cycles(src, with_tests=False):
    """[(modules, [(a, b, (file, line)), …])]: each cycle among src's
    top-level modules with the edges that form it."""
    graph = module_graph(src, with_tests)
    result = []
    for comp in strongly_connected(graph):
        edges = [(a, b, graph[a][b]) for a in comp for b in sorted(graph[a]) if b in comp]
        result.append((comp, edges))
    return result


def describe(crate, comp, edges):
    lines = [f"{crate}: cycle among {{{', '.join(comp)}}}"]
    for a, b, (path, line) in edges:
        lines.append(f"    {a} -> {b}   ({path}:{line})")
    return "\n".join(lines)


SELF_TEST = {
    "lib.rs": "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub mod e;\npub use e::Thing as Renamed;\n",
    # a -> b through a grouped use, a -> c through an inline path.
    "a.rs": "use crate::{b::{X, Y}, error};\nfn f() { crate::c::g(); }\n",
    # b -> a from a submodule climbing with super::super; super::c is b's
    # own child b::c, not the top-level c.
    "b/mod.rs": "mod c;\nmod inner;\n",
    "b/c.rs": "",
    "b/inner.rs": "use super::super::a::Z;\nuse super::c::Nested;\n",
    # c -> d only through the root re-export; the rest must not count.
    "c.rs": (
        "// use crate::a::Commented;\n/* crate::b::Blocked */\n"
        "const S: &str = \"crate::a::InString\";\nconst C: char = '\\'';\n"
        "const B: &[u8] = br\"\\\";\n"
        "macro_rules! m { () => { $crate::a::Macro }; }\n"
        "fn h<'x>(s: &'x str) -> crate::Renamed { todo!() }\n"
        "#[cfg(test)]\nmod tests { use crate::a::Tested; }\n"
        "#[cfg(test)]\nmod more;\n"
    ),
    "c/more.rs": "use crate::b::TestOnlyFile;\n",
    "d.rs": "",
    "e.rs": "use crate::c::Back;\n",
}


def self_test():
    """Runs the scanner on SELF_TEST's crate; returns what went wrong."""
    import tempfile

    with tempfile.TemporaryDirectory() as src:
        for rel, text in SELF_TEST.items():
            path = os.path.join(src, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        graph = {a: sorted(b) for a, b in module_graph(src).items()}
        want = {"a": ["b", "c"], "b": ["a"], "c": ["e"], "d": [], "e": ["c"]}
        found = [comp for comp, _ in cycles(src)]
        tests_graph = {a: sorted(b) for a, b in module_graph(src, with_tests=True).items()}
    errors = []
    if graph != want:
        errors.append(f"graph {graph}, expected {want}")
    if found != [["a", "b"], ["c", "e"]]:
        errors.append(f"cycles {found}, expected [['a', 'b'], ['c', 'e']]")
    if tests_graph["c"] != ["a", "b", "e"]:
        errors.append(f"--with-tests: c uses {tests_graph['c']}, expected ['a', 'b', 'e']")
    return errors


def main(argv):
    if "--self-test" in argv:
        errors = self_test()
        for e in errors:
            print(f"module-cycles self-test: {e}", file=sys.stderr)
        return 1 if errors else 0
    with_tests = "--with-tests" in argv
    dirs = [a for a in argv if a != "--with-tests"]
    if not dirs:
        base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")
        dirs = [os.path.join(base, c, "src") for c in sorted(os.listdir(base))]
    found = 0
    for src in dirs:
        crate = os.path.basename(os.path.dirname(os.path.abspath(src)))
        for comp, edges in cycles(src, with_tests):
            print(describe(crate, comp, edges))
            found += 1
    if not found:
        print("no module cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
