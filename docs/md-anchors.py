#!/usr/bin/env python3
"""md-anchors.py FILE.md - doxygen input filter for the Markdown documents.

GitHub gives every heading an anchor (its text lower-cased, spaces as '-',
punctuation dropped, '-1', '-2' ... after repeats), and the documents link to
them as [text](#anchor).  Doxygen makes no such anchors, so this filter adds
them as explicit labels ("## Title {#label}") and rewrites the links to match;
labels are prefixed with the file's name, since doxygen's are global.  Each
page is labelled with its file's name, and links to another document by file
name ([text](FORMATS.md)) become links to that label.
Headings inside fenced code blocks are left alone."""
import os
import re
import sys



def page_label(stem):
    """A document's page label: its file name's stem (FORMATS -> formats)."""
    return re.sub(r'[^a-z0-9]+', '-', stem.lower())


path = sys.argv[1]
page = page_label(os.path.splitext(os.path.basename(path))[0])
prefix = page + '-'
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
            # The page title (level 1) gets the file's name as its label
            # (FORMATS.md: "formats"), which links to the file use.
            if len(m.group(1)) > 1:
                line = '%s %s {#%s%s}\n' % (m.group(1), m.group(2), prefix, slug)
            else:
                line = '%s %s {#%s}\n' % (m.group(1), m.group(2), page)
        elif not fenced:
            line = re.sub(r'\]\(#([\w\-]+)\)', lambda k: '](#%s%s)' % (prefix, k.group(1)), line)
            # A link to another document by its file name makes doxygen
            # look for that file by its absolute path, which fails when the
            # path holds a space: link to the document's page label instead.
            line = re.sub(r'\]\(([A-Za-z0-9_\-]+)\.md\)',
                          lambda k: '](@ref %s)' % page_label(k.group(1)), line)
        out.append(line)
sys.stdout.write(''.join(out))
