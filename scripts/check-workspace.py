#!/usr/bin/env python3
"""Checks the workspace's shape from `cargo metadata` (run by scripts/test.sh).

1. Layering: each workspace crate may depend (normal or build dependencies)
   only on the workspace crates LAYERS allows; `kube-double`, the Kubernetes
   API test double, only ever as a dev-dependency. docs/architecture.md
   ("Which crate may call which") states the same rule for people.
2. One version of each direct dependency across the workspace: two crates
   asking for different majors of, say, `base64` or `rand` fail the check.
3. Every crate inherits the workspace's edition, rust-version and lints.
4. No cycle among the top-level modules of the library crates in
   NO_MODULE_CYCLES (module `a` using `b` while `b` uses `a`), found by
   scripts/module-cycles.py; a cycle that must stay for now is listed in
   MODULE_CYCLE_ALLOWLIST with the reason.

Exits 1 with one line per violation.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys

# crate -> the workspace crates it may depend on (normal/build dependencies).
LAYERS = {
    "lifeboat": {"lifeboat-ops", "lifeboat-region", "lifeboat-repo", "lifeboat-postgres", "lifeboat-kube", "lifeboat-dr"},
    "lifeboat-ops": {"lifeboat-region", "lifeboat-repo", "lifeboat-postgres", "lifeboat-kube", "lifeboat-dr"},
    "lifeboat-dr": {"lifeboat-repo"},
    "lifeboat-repo": set(),
    "lifeboat-postgres": set(),
    "lifeboat-kube": set(),
    "lifeboat-region": {"lifeboat-postgres"},
    "kube-double": set(),
    "lifeboat-testbed": {"lifeboat-postgres"},
    "lifeboat-test-ports": set(),
}
TEST_ONLY = {"kube-double", "lifeboat-testbed", "lifeboat-test-ports"}

# Library crates whose top-level modules must not form a cycle.
NO_MODULE_CYCLES = ["lifeboat-region", "lifeboat-repo", "lifeboat-ops", "lifeboat-kube", "lifeboat-postgres", "lifeboat-dr"]
# (crate, the modules of the cycle exactly) -> why it stays for now. A cycle
# that grows or changes fails again, so it gets looked at again. E.g.
#   ("lifeboat-x", frozenset({"a", "b"})): "a and b split in issue N; merged back in N+1",
MODULE_CYCLE_ALLOWLIST = {}


def module_cycle_problems(members):
    """One line per module cycle in a NO_MODULE_CYCLES crate not allowed."""
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("module_cycles", os.path.join(here, "module-cycles.py"))
    module_cycles = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode = True  # no scripts/__pycache__ left behind
    spec.loader.exec_module(module_cycles)
    # A scanner that silently found nothing would pass every crate.
    problems = [f"scripts/module-cycles.py self-test: {e}" for e in module_cycles.self_test()]
    for name in NO_MODULE_CYCLES:
        if name not in members:
            problems.append(f"NO_MODULE_CYCLES names {name}, which is not a workspace crate")
            continue
        src = os.path.join(os.path.dirname(members[name]["manifest_path"]), "src")
        for comp, edges in module_cycles.cycles(src):
            if (name, frozenset(comp)) in MODULE_CYCLE_ALLOWLIST:
                continue
            detail = "; ".join(f"{a} -> {b} at {path}:{line}" for a, b, (path, line) in edges)
            problems.append(
                f"{name}: module cycle among {{{', '.join(comp)}}} ({detail}); move what both use "
                "into the module that owns it or a small module of its own (scripts/module-cycles.py)"
            )
    return problems


def unrun_test_problems(members):
    """Files in a package's tests/ directory that no test target compiles.

    With `autotests = false` cargo builds only the `[[test]]` targets; a
    file beside them must be one of those or a `mod` of one (tests/main.rs
    gathers most of a crate's files, tests/daemons.rs or tests/timing.rs the
    ones that run alone), or it never runs.
    """
    problems = []
    for name, pkg in sorted(members.items()):
        tests_dir = os.path.join(os.path.dirname(pkg["manifest_path"]), "tests")
        if not os.path.isdir(tests_dir):
            continue
        roots = [t["src_path"] for t in pkg["targets"] if "test" in t["kind"]]
        covered = {os.path.realpath(r) for r in roots}
        for root in roots:
            with open(root, encoding="utf-8") as f:
                for m in re.finditer(r"^mod ([a-z0-9_]+);", f.read(), re.M):
                    covered.add(os.path.realpath(os.path.join(os.path.dirname(root), m.group(1) + ".rs")))
        for f in sorted(os.listdir(tests_dir)):
            path = os.path.realpath(os.path.join(tests_dir, f))
            if f.endswith(".rs") and path not in covered:
                problems.append(
                    f"{name}: tests/{f} is in no test target: add `mod {f[:-3]};` to a test target's root (tests/main.rs) "
                    f"or a [[test]] entry to its Cargo.toml (autotests is off)"
                )
    return problems


def testing_only(pkg, dep):
    """Whether `dep` is optional and enabled only by `pkg`'s `testing`
    feature, which no default feature turns on: then only test builds,
    which ask for `testing` in their dev-dependencies, ever have it."""
    if not dep.get("optional"):
        return False
    features = pkg.get("features", {})
    enabling = [f for f, items in features.items() if f"dep:{dep['name']}" in items or dep["name"] in items]
    return enabling == ["testing"] and "testing" not in features.get("default", [])


def main() -> int:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    members = {p["name"]: p for p in meta["packages"]}
    problems = []
    unknown = set(members) - set(LAYERS)
    for name in sorted(unknown):
        problems.append(f"{name}: not in scripts/check-workspace.py's LAYERS; say which crates it may use")
    requested = {}
    for name, pkg in sorted(members.items()):
        for dep in pkg["dependencies"]:
            dname = dep["name"]
            if dname in members:
                if dep["kind"] == "dev":
                    continue
                if dname in TEST_ONLY:
                    if not testing_only(pkg, dep):
                        problems.append(
                            f"{name}: depends on the test-only crate {dname} outside dev-dependencies "
                            "(or an optional dependency that only its `testing` feature enables)"
                        )
                elif dname not in LAYERS.get(name, set()):
                    problems.append(f"{name}: may not depend on {dname} (layering, docs/architecture.md)")
                continue
            requested.setdefault(dname, set()).add(dep["req"])
        if pkg.get("edition") != "2024":
            problems.append(f"{name}: edition {pkg.get('edition')}, the workspace's is 2024")
        if pkg.get("rust_version") is None:
            problems.append(f"{name}: no rust-version (use rust-version.workspace = true)")
    for dname, reqs in sorted(requested.items()):
        if len(reqs) > 1:
            problems.append(f"dependency {dname}: several versions requested {sorted(reqs)}; use the [workspace.dependencies] one")
    # Lints are inherited when the manifest says `[lints] workspace = true`.
    for name, pkg in sorted(members.items()):
        with open(pkg["manifest_path"], encoding="utf-8") as f:
            text = f.read()
        if "[lints]\nworkspace = true" not in text:
            problems.append(f"{name}: does not inherit [workspace.lints]")
    problems.extend(module_cycle_problems(members))
    problems.extend(unrun_test_problems(members))
    for p in problems:
        print(f"check-workspace: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
