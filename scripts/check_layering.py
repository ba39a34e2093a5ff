#!/usr/bin/env python3
"""Checks the module layering of simdnn (docs/architecture.md) from the sources themselves.

Each library module owns <module>/include/simdnn/**.h (its public headers) and the sources in
<module>/. A module may include its own headers and those of the modules it depends on, never
one above it or beside it; no header include cycle may exist. The build already refuses an
upward include (a module's include path holds only its own and its dependencies' headers);
this check also names the offending line, and catches what the include path cannot (a
relative "../" include, a cycle among one module's headers).

Usage: check_layering.py SOURCE_DIR    (exit 0: clean; 1: violations listed on stderr)
"""
import pathlib
import re
import sys

# Allowed dependencies, direct or not: the diagram in docs/architecture.md.
DEPENDS = {
    "core": set(),
    "kernels": {"core"},
    "optim": {"kernels", "core"},
    "io": {"core"},
    "nn": {"kernels", "optim", "io", "core"},
    "store": set(),
    "serving": {"store", "nn", "io", "optim", "kernels", "core"},
    "distributed": {"nn", "io", "optim", "kernels", "core"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
SOURCE_SUFFIXES = {".h", ".cc"}


def main(root: pathlib.Path) -> int:
    owner = {}  # "simdnn/tensor.h" -> "core"
    for module in DEPENDS:
        for header in (root / module / "include").rglob("*.h"):
            owner[str(header.relative_to(root / module / "include"))] = module
    if len(owner) < 20:
        print(f"check_layering: only {len(owner)} public headers found under {root}", file=sys.stderr)
        return 1

    problems = []
    graph = {}  # public header -> public headers it includes
    for module in DEPENDS:
        allowed = DEPENDS[module] | {module}
        for path in sorted((root / module).rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or "testing" in path.parts:
                continue
            rel = path.relative_to(root)
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                if ".." in pathlib.PurePosixPath(target).parts:
                    problems.append(f"{rel}:{number}: relative include out of the module: {target}")
                    continue
                if target.startswith("simdnn/testing/"):
                    problems.append(f"{rel}:{number}: library code includes a test hook: {target}")
                    continue
                if target not in owner:
                    continue
                if owner[target] not in allowed:
                    problems.append(f"{rel}:{number}: {module} includes {target} of module "
                                    f"{owner[target]}, which it may not depend on")
                if path.parent.name == "simdnn" and "include" in path.parts:
                    graph.setdefault(str(path.relative_to(root / module / "include")), set()).add(target)

    # Include cycles among public headers (depth-first search, three colours).
    state = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                problems.append("include cycle: " + " -> ".join(cycle))
            elif state.get(nxt) is None:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node, [node])

    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"check_layering: {len(owner)} public headers in {len(DEPENDS)} modules, "
              "no upward include, no cycle")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(pathlib.Path(sys.argv[1])))
