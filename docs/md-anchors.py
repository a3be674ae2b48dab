#!/usr/bin/env python3
"""md-anchors.py FILE.md - doxygen input filter for the Markdown documents.

GitHub gives every heading an anchor (its text lower-cased, spaces as '-',
punctuation dropped, '-1', '-2' ... after repeats), and the documents link to
them as [text](#anchor).  Doxygen makes no such anchors, so this filter adds
them as explicit labels ("## Title {#label}") and rewrites the links to match;
labels are prefixed with the file's name, since doxygen's are global.
Headings inside fenced code blocks are left alone."""
import os
import re
import sys

path = sys.argv[1]
prefix = re.sub(r'[^a-z0-9]+', '-', os.path.splitext(os.path.basename(path))[0].lower()) + '-'
seen = {}
out = []
fenced = False
with open(path, encoding='utf-8') as f:
    for line in f:
        if line.lstrip().startswith('```'):
            fenced = not fenced
        m = None if fenced else re.match(r'^(#{1,6})\s+(.*?)\s*$', line)
        if m and not m.group(2).endswith('}'):
            slug = re.sub(r'[^\w\- ]', '', m.group(2).lower()).replace(' ', '-')
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            if n:
                slug = '%s-%d' % (slug, n)
            # The page title (level 1) keeps doxygen's own label.
            if len(m.group(1)) > 1:
                line = '%s %s {#%s%s}\n' % (m.group(1), m.group(2), prefix, slug)
        elif not fenced:
            line = re.sub(r'\]\(#([\w\-]+)\)', lambda k: '](#%s%s)' % (prefix, k.group(1)), line)
        out.append(line)
sys.stdout.write(''.join(out))
