#!/usr/bin/env python3
"""Checks that the README is a front door and that the docs hold together.

- The README is at most 300 lines, and its first screen (before the first `## `) gives
  exactly two commands, `./setup.sh serve` and `./setup.sh test`, which setup.sh runs.
- Every relative link in README.md and docs/*.md names a file of the repository, and
  every `#anchor` names a heading of the page it points to.
- No text names a path outside the repository (`../shared`, `/work/...`).

Exit status 0 when all hold, 1 otherwise.  Run:  python3 scripts/check-docs.py
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_README_LINES = 300


def anchors(path):
    """GitHub's anchors for a Markdown file's headings."""
    found, seen, fence = set(), {}, False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if not m:
            continue
        text = re.sub(r"[`*_\[\]()]", "", m.group(1)).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def main():
    problems = []
    readme = os.path.join(ROOT, "README.md")
    lines = open(readme, encoding="utf-8").read().split("\n")
    if len(lines) > MAX_README_LINES:
        problems.append(f"README.md has {len(lines)} lines; at most {MAX_README_LINES}")
    first_screen = "\n".join(lines[: next((i for i, l in enumerate(lines) if l.startswith("## ")), len(lines))])
    commands = re.findall(r"^(\./setup\.sh \S+)", first_screen, flags=re.M)
    if commands != ["./setup.sh serve", "./setup.sh test"]:
        problems.append(f"README.md's first screen should give ./setup.sh serve and ./setup.sh test, gives {commands}")
    setup = open(os.path.join(ROOT, "setup.sh"), encoding="utf-8").read()
    for command in commands:
        if not re.search(r"^\s+" + re.escape(command.split()[1]) + r"\)", setup, flags=re.M):
            problems.append(f"setup.sh has no `{command.split()[1]}` command")

    pages = [readme] + sorted(
        os.path.join(ROOT, "docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")
    )
    checked = 0
    for page in pages:
        text = open(page, encoding="utf-8").read()
        for outside in re.findall(r"\.\./shared\S*|/work/\S+", text):
            problems.append(f"{os.path.relpath(page, ROOT)} names {outside}, outside the repository")
        for link in links(page):
            if re.match(r"^[a-z]+:", link):
                continue
            checked += 1
            target, _, anchor = link.partition("#")
            target_path = os.path.normpath(os.path.join(os.path.dirname(page), target)) if target else page
            where = f"{os.path.relpath(page, ROOT)}: ({link})"
            if not os.path.exists(target_path):
                problems.append(f"{where} names a file that does not exist")
            elif anchor and target_path.endswith(".md") and anchor not in anchors(target_path):
                problems.append(f"{where} names no heading of {os.path.relpath(target_path, ROOT)}")

    for problem in problems:
        print(problem)
    print(f"{len(pages)} pages, {checked} links checked, README {len(lines)} lines: {'OK' if not problems else 'FAILED'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
