#!/usr/bin/env python3
"""Checks the two rules of docs/architecture.md, and prints what it found.

1. Crate edges point down. `cargo metadata` gives each workspace crate's normal
   dependencies; each crate has a layer, and a crate may depend only on crates of a
   lower layer:  domain (0) < push, store (1) < core (2) < app (3).
2. No module circle inside any crate. Every `use crate::…`, `use super::…` and every
   `crate::…`/`super::…`/`self::…` path in a crate's code (its test modules left out) is
   an edge from the module it is written in to the deepest module it names. A parent's
   `pub use child::Item` (the child's public face) is not an edge. The strongly connected
   components of that graph must all be single modules.

Exit status 0 when both hold, 1 otherwise.  Run:  python3 scripts/check-architecture.py [WORKSPACE]
"""

import json
import os
import re
import subprocess
import sys

# The workspace to check: the first argument, else this repository.
ROOT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAYERS = {
    "clarion-domain": 0,
    "clarion-push": 1,
    "clarion-store": 1,
    "clarion-core": 2,
    "clarion": 3,
}


def crate_edges():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    )
    names = {p["name"] for p in meta["packages"]}
    edges = []
    for package in meta["packages"]:
        for dep in package["dependencies"]:
            if dep["name"] in names and dep["kind"] is None:
                edges.append((package["name"], dep["name"], os.path.dirname(package["manifest_path"])))
    return edges


def module_of(src, path):
    """The module path (a tuple) that the file `path` under `src` defines."""
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def strip_tests(text):
    """The file without its `#[cfg(test)]` modules (and comments and strings, roughly)."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\((?:all\()?test[^\]]*\]\s*(?:pub\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def expand_use_trees(text):
    """Every path a `use` names, with brace groups expanded: `use a::{b, c::d}` gives
    `a::b` and `a::c::d`."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        stack = [("", m.group(1).replace("\n", " "))]
        while stack:
            prefix, tree = stack.pop()
            tree = tree.strip()
            brace = tree.find("{")
            if brace < 0:
                for part in split_top(tree):
                    paths.append(prefix + part.strip())
                continue
            head, body = tree[:brace], tree[brace + 1 : tree.rfind("}")]
            for part in split_top(body):
                stack.append((prefix + head, part))
    return paths


def split_top(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def resolve(module, path, known):
    """The deepest known module that `path`, written in `module`, names; None when the
    path leaves the crate."""
    segments = [s.strip() for s in path.split("::") if s.strip()]
    if not segments:
        return None
    base = list(module)
    if segments[0] == "crate":
        base, segments = [], segments[1:]
    elif segments[0] == "self":
        segments = segments[1:]
    elif segments[0] == "super":
        while segments and segments[0] == "super":
            base = base[:-1]
            segments = segments[1:]
    else:
        # A path from a dependency, or a parent re-exporting its child (`pub use
        # child::Item`, the child's public face): not an edge.
        return None
    target = tuple(base)
    for seg in segments:
        seg = re.split(r"\s+as\s+", seg)[0].strip()
        if tuple(list(target) + [seg]) in known:
            target = tuple(list(target) + [seg])
        else:
            break
    return target


def module_graph(src):
    files = {}
    for dirpath, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                files[module_of(src, path)] = path
    known = set(files)
    graph = {m: set() for m in known}
    for module, path in files.items():
        text = strip_tests(open(path, encoding="utf-8").read())
        paths = expand_use_trees(text)
        paths += re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", text)
        for p in paths:
            target = resolve(module, p, known)
            if target is not None and target != module:
                graph[module].add(target)
    return graph


def cycles(graph):
    """Tarjan's strongly connected components with more than one module."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def name(module):
    return "::".join(module) or "(crate root)"


def main():
    ok = True
    edges = crate_edges()
    print("crate edges (normal dependencies inside the workspace):")
    crate_dirs = {}
    for a, b, directory in edges:
        crate_dirs[a] = directory
        la, lb = LAYERS.get(a), LAYERS.get(b)
        down = la is None or lb is None or lb < la
        print(f"  {a} -> {b}{'' if down else '   <-- does not point down'}")
        ok &= down
    meta = json.loads(
        subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                       check=True, capture_output=True, text=True).stdout
    )
    for package in meta["packages"]:
        src = os.path.join(os.path.dirname(package["manifest_path"]), "src")
        graph = module_graph(src)
        found = cycles(graph)
        edge_count = sum(len(v) for v in graph.values())
        if found:
            ok = False
            for component in found:
                print(f"{package['name']}: a circle among {', '.join(sorted(name(m) for m in component))}")
                for m in sorted(component):
                    inside = sorted(name(t) for t in graph[m] if t in component)
                    print(f"    {name(m)} -> {', '.join(inside)}")
        else:
            print(f"{package['name']}: {len(graph)} modules, {edge_count} edges, no circle")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
