#!/usr/bin/env python3
"""Turns the `FAULT case [mode]: outcome, notes` lines of a fault-suite run (stdin) into the
Markdown table of docs/faults.md's "Last run" section (stdout)."""
import re
import sys

print("| case | mode | outcome | time to consistency / notes |")
print("|---|---|---|---|")
for line in sys.stdin:
    m = re.match(r"FAULT (\S+?)(?: \[(\w+)\])?: (\w+), (.*)$", line.strip())
    if m:
        case, mode, outcome, notes = m.groups()
        print(f"| {case} | {mode or '-'} | {outcome} | {notes} |")
