"""site_dir.py PREFIX DEFAULT: prints where the package should be installed
when DEFAULT, meson's site directory, is not on this interpreter's path: the
first of its site directories under PREFIX that is (nothing if none is, or
if DEFAULT is).  Run by meson at configure time; not part of the package."""

import os
import site
import sys


def main():
    prefix, default = os.path.realpath(sys.argv[1]), sys.argv[2]
    on_path = {os.path.realpath(p) for p in sys.path if p}
    if os.path.realpath(default) in on_path:
        return
    for d in site.getsitepackages():
        real = os.path.realpath(d)
        if os.path.commonpath([real, prefix]) == prefix and real in on_path:
            print(d)
            return


if __name__ == "__main__":
    main()
