#!/usr/bin/env python3
"""What weighs in a wasm: code and data by crate (and by module for Clarion's own crates).

    scripts/wasm-weight.py FILE.wasm [--top N]

FILE must keep its names (wasm-bindgen --keep-debug, then wasm-opt -g): scripts/build-site.sh
--names writes such copies next to the bundles. It runs `twiggy top` and adds each item's
shallow size to its owner: the first Clarion module named in the item, to two levels
(`clarion::components::admin`), so a tachys view instantiated for the console counts for
the console; otherwise the first crate named (`<tachys::...>::hydrate` counts for tachys). The name section itself is not
counted: it is what -g keeps and the served wasm drops.
"""
import csv
import io
import re
import subprocess
import sys
from collections import Counter

CRATE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[[0-9a-f]+\]((?:::[A-Za-z_][A-Za-z0-9_]*)*)")


def owner(name: str) -> str:
    # Generic code instantiated for a Clarion type (a tachys view of the console) is the
    # console's weight, so Clarion's own modules are looked for first.
    mine = [m for m in CRATE.finditer(name) if m.group(1).startswith("clarion")]
    m = mine[0] if mine else CRATE.search(name)
    if not m:
        if name.startswith("data segment") or name.startswith("elem") or name.startswith("table"):
            return "(data, tables)"
        return "(unnamed: wasm-bindgen shims, std)"
    crate, path = m.group(1), m.group(2)
    if crate.startswith("clarion"):
        parts = [p for p in path.split("::") if p][:2]
        return "::".join([crate] + parts)
    return crate


def main() -> None:
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    top = int(args[args.index("--top") + 1]) if "--top" in args else 25
    out = subprocess.run(["twiggy", "top", "-n", "1000000", "--format", "csv", args[0]],
                         check=True, capture_output=True, text=True).stdout
    weights: Counter[str] = Counter()
    for row in csv.DictReader(io.StringIO(out)):
        name = row["Name"]
        if "function names" in name or "local names" in name or name.endswith("subsection"):
            continue
        weights[owner(name)] += int(row["ShallowSize"])
    total = sum(weights.values())
    print(f"{'bytes':>9}  {'share':>6}  owner")
    for name, size in weights.most_common(top):
        print(f"{size:>9}  {100 * size / total:5.1f}%  {name}")
    print(f"{total:>9}  100.0%  total (code and data, without the name section)")


if __name__ == "__main__":
    main()
