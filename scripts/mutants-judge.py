#!/usr/bin/env python3
"""Judges a cargo-mutants run: prints caught/viable per file, and fails when
a missed mutant is not in the survivors list (or a listed one is no longer
missed). Usage: mutants-judge.py MUTANTS_OUT_DIR SURVIVORS_FILE.

The survivors file: one entry per line, `file: mutation  ## reason`, where
`file: mutation` is a line of cargo-mutants' missed.txt without the
`:line:column`. Lines starting with # are comments."""
import collections
import os
import re
import sys

LOC = re.compile(r"^(?P<file>[^:]+):\d+:\d+: (?P<what>.*)$")


def read(path):
    if not os.path.exists(path):
        return []
    return [l.rstrip("\n") for l in open(path) if l.strip()]


def key(line):
    m = LOC.match(line)
    return (m["file"], m["what"]) if m else (line, "")


def main():
    out, listfile = sys.argv[1], sys.argv[2]
    outcomes = {name: [key(l) for l in read(os.path.join(out, name + ".txt"))]
                for name in ("caught", "missed", "timeout", "unviable")}
    files = sorted({f for v in outcomes.values() for f, _ in v})
    print(f"{'file':45} caught/viable  score  (timeouts count as caught)")
    for f in files:
        c = sum(1 for k in outcomes["caught"] + outcomes["timeout"] if k[0] == f)
        m = sum(1 for k in outcomes["missed"] if k[0] == f)
        score = 100.0 * c / (c + m) if c + m else 100.0
        print(f"{f:45} {c:4}/{c + m:<4}      {score:5.1f} %")
    listed = collections.Counter()
    reasons = {}
    for l in read(listfile):
        if l.startswith("#"):
            continue
        entry, _, reason = l.partition("  ## ")
        if not reason.strip():
            print(f"survivors list: an entry without a reason: {l}")
            return 1
        f, _, what = entry.partition(": ")
        listed[(f.strip(), what.strip())] += 1
        reasons[(f.strip(), what.strip())] = reason.strip()
    missed = collections.Counter(outcomes["missed"])
    unlisted = missed - listed
    stale = collections.Counter({k: n for k, n in (listed - missed).items() if k[0] in files})
    for (f, what), n in sorted(unlisted.items()):
        print(f"NEW SURVIVOR ({n}x): {f}: {what}")
    for (f, what), n in sorted(stale.items()):
        print(f"LISTED BUT CAUGHT NOW ({n}x), remove it from the list: {f}: {what}")
    print(f"missed {sum(missed.values())}, listed {sum((missed & listed).values())}, "
          f"unlisted {sum(unlisted.values())}, stale {sum(stale.values())}")
    return 1 if unlisted or stale else 0


if __name__ == "__main__":
    sys.exit(main())
