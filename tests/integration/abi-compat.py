#!/usr/bin/env python3
"""abi-compat.py REPORT - is an abidiff report only compatible struct growth?

abidiff calls any change to a struct reachable from a function an ABI change
(status 4).  The structs that cross libchargan's ABI start with their own
size and may grow at the end: the library reads no more than the caller's
struct_size.  So a report is accepted when every change it lists is a member
inserted into a chargan_*_options / _config / progress struct, with no member
removed, moved or retyped, and no function removed or changed otherwise.
(libabigail 2.2's own "has_data_member_inserted_at = end" suppression also
accepts an insertion that shifts the members after it, so it is not used.)
Exits 0 if compatible, 1 (printing why) if not.
"""

import re
import sys

GROWABLE = re.compile(r"underlying type 'struct chargan_[a-z_]*(options|config|progress)' changed:$")
# Lines that only say where a change is, or that a type seen before changed.
NAVIGATION = [
    re.compile(r"^(Functions|Variables) changes summary: 0 Removed, \d+ Changed.*, \d+ Added"),
    re.compile(r"^\d+ functions? with some indirect sub-type changes?:$"),
    re.compile(r"^\[C\] 'function .*' has some indirect sub-type changes:$"),
    re.compile(r"^parameter \d+ of type '.*' has sub-type changes:$"),
    re.compile(r"^in pointed to type '.*':$"),
    re.compile(r"^in unqualified underlying type '.*':$"),
    re.compile(r"^(unqualified underlying|pointed to|underlying) type '.*' changed, as reported earlier$"),
]
GROWTH = [
    re.compile(r"^type size hasn't changed$"),
    re.compile(r"^type size changed from (\d+) to (\d+) \(in bits\)$"),
    re.compile(r"^\d+ data member insertions?:$"),
    re.compile(r"^'.*', at offset \d+ \(in bits\)$"),
]


def main(path):
    problems = []
    in_growable = False
    with open(path, encoding='utf-8', errors='replace') as f:
        for raw in f:
            line = raw.strip()
            if not line:
                continue
            if GROWABLE.search(line):
                in_growable = True
                continue
            if any(p.search(line) for p in NAVIGATION):
                in_growable = False
                continue
            if in_growable and any(p.search(line) for p in GROWTH):
                m = GROWTH[1].search(line)
                if m and int(m.group(2)) < int(m.group(1)):
                    problems.append(line)
                continue
            problems.append(line)
    if problems:
        print('not a compatible change:')
        for p in problems:
            print('  ' + p)
        return 1
    print('only size-prefixed structs grew: compatible')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
