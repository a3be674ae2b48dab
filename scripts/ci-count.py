#!/usr/bin/env python3
"""Count test cases from meson's test logs.

usage: ci-count.py [--log NAME] BUILD_DIR...

Reads BUILD_DIR/meson-logs/NAME (default testlog.json, one JSON object per
test run) and BUILD_DIR/meson-info/intro-tests.json (each test's protocol).
A TAP test counts its own "ok" / "not ok" lines, one per Check case; any
other test counts as one case.  A test whose run went wrong (crash, timeout,
non-zero exit, bail-out) counts at least one failure even if every line it
printed said "ok", and the cases it planned but never reported count as
failed too, so a dying binary cannot make its cases vanish.

Prints one line per failed case, then "(N skipped)" if any were, and last the
plain summary "N passed, N failed".  Exits 1 if anything failed or a log is
missing, else 0.
"""

import json
import os
import re
import sys

TAP_RESULT = re.compile(r'^(not )?ok\b\s*(\d+)?\s*-?\s*([^#]*)(#.*)?$')
TAP_PLAN = re.compile(r'^1\.\.(\d+)')
GOOD = {'OK', 'EXPECTEDFAIL'}


def protocols(build_dir):
    """Map test name -> protocol from meson's introspection data."""
    path = os.path.join(build_dir, 'meson-info', 'intro-tests.json')
    try:
        with open(path, encoding='utf-8') as f:
            return {t['name']: t.get('protocol', 'exitcode') for t in json.load(f)}
    except (OSError, ValueError):
        return {}


def count_tap(stdout):
    """(passed, failed, skipped, planned, failed case names) from TAP text."""
    passed = failed = skipped = 0
    planned = None
    names = []
    for line in stdout.splitlines():
        m = TAP_PLAN.match(line)
        if m:
            planned = int(m.group(1))
            if re.search(r'#\s*skip', line, re.I):
                planned = 0
            continue
        if line.startswith('Bail out!'):
            failed += 1
            names.append(line)
            continue
        m = TAP_RESULT.match(line)
        if not m:
            continue
        directive = (m.group(4) or '').lower()
        if re.match(r'#\s*skip', directive):
            skipped += 1
        elif re.match(r'#\s*todo', directive):
            skipped += 1  # a known failure, neither passed nor failed
        elif m.group(1):
            failed += 1
            names.append(m.group(3).strip() or 'case %s' % m.group(2))
        else:
            passed += 1
    return passed, failed, skipped, planned, names


def count_log(build_dir, log_name, totals, failures):
    log = os.path.join(build_dir, 'meson-logs', log_name)
    protos = protocols(build_dir)
    try:
        f = open(log, encoding='utf-8')
    except OSError as e:
        failures.append('%s: no test log (%s)' % (build_dir, e.strerror))
        totals['failed'] += 1
        return
    with f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            name, result = t['name'], t['result']
            bad = result not in GOOD and result != 'SKIP'
            # testlog.json may name it "project:suite / name".
            proto = protos.get(name) or protos.get(name.rsplit(' / ', 1)[-1])
            if proto is None and any(TAP_PLAN.match(x) for x in (t.get('stdout') or '').splitlines()):
                proto = 'tap'  # no introspection data, but it speaks TAP
            if proto == 'tap':
                p, fl, s, planned, names = count_tap(t.get('stdout') or '')
                failures.extend('%s: %s' % (name, n) for n in names)
                if bad:
                    seen = p + fl + s
                    missing = planned - seen if planned is not None and planned > seen else 0
                    extra = max(missing, 1 if fl == 0 else 0)
                    if extra:
                        failures.append('%s: %s (exit status %s), %d case(s) unreported or lost'
                                        % (name, result, t.get('returncode'), extra))
                    fl += extra
                if result == 'SKIP' and p + fl + s == 0:
                    s = 1  # "1..0 # SKIP reason": the whole test was skipped
                totals['passed'] += p
                totals['failed'] += fl
                totals['skipped'] += s
            elif result == 'SKIP':
                totals['skipped'] += 1
            elif bad:
                totals['failed'] += 1
                failures.append('%s: %s (exit status %s)' % (name, result, t.get('returncode')))
            else:
                totals['passed'] += 1


def main(argv):
    log_name = 'testlog.json'
    args = argv[1:]
    if len(args) >= 2 and args[0] == '--log':
        log_name, args = args[1], args[2:]
    if not args or args[0].startswith('-'):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    totals = {'passed': 0, 'failed': 0, 'skipped': 0}
    failures = []
    for build_dir in args:
        count_log(build_dir, log_name, totals, failures)
    for f in failures:
        print('FAILED: ' + f)
    if totals['skipped']:
        print('(%d skipped)' % totals['skipped'])
    print('%d passed, %d failed' % (totals['passed'], totals['failed']))
    return 1 if totals['failed'] else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
