"""`import chargan` from an installed tree: `meson install --destdir` into a
temporary directory, then import the installed package in a fresh
interpreter with only LD_LIBRARY_PATH pointing at the installed library (the
system loader's path), no CHARGAN_LIBRARY and no build tree.

Usage: test_installed.py MESON BUILD_DIR"""

import json
import os
import shutil
import subprocess
import sys
import tempfile


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    meson, build = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="chargan-py-install-")
    try:
        dest = os.path.join(tmp, "dest")
        r = subprocess.run([meson, "install", "-C", build, "--no-rebuild", "--destdir", dest],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("meson install failed:\n" + r.stdout + r.stderr)
        # Packagers split an install by tags: the package is python-runtime.
        tagged = os.path.join(tmp, "tagged")
        r = subprocess.run([meson, "install", "-C", build, "--no-rebuild", "--destdir", tagged,
                            "--tags", "python-runtime"], capture_output=True, text=True)
        if r.returncode != 0 or not any("__init__.py" in files and os.path.basename(root) ==
                                        "chargan" for root, _, files in os.walk(tagged)):
            fail("meson install --tags python-runtime installed no package:\n" + r.stdout +
                 r.stderr)
        packages, libs = [], []
        for root, dirs, files in os.walk(dest):
            if os.path.basename(root) == "chargan" and "__init__.py" in files:
                packages.append(root)
            if "libchargan.so.0" in files:
                libs.append(root)
        if len(packages) != 1 or len(libs) != 1:
            fail("expected one installed package and one library, got %s and %s" % (packages, libs))
        package, libdir = packages[0], libs[0]
        print("package: " + package)
        print("library: " + libdir)
        # Under /usr or /usr/local, where this interpreter looks, `import
        # chargan` must work without PYTHONPATH (meson's default site
        # directory was lib/python3/dist-packages, not read under /usr/local).
        r = subprocess.run([meson, "introspect", "--buildoptions", build],
                           capture_output=True, text=True, check=True)
        prefix = next(o["value"] for o in json.loads(r.stdout) if o["name"] == "prefix")
        site_dir = os.path.dirname(package)[len(dest):]
        on_path = {os.path.realpath(p) for p in sys.path if p}
        if prefix in ("/usr", "/usr/local") and os.path.realpath(site_dir) not in on_path:
            fail("installed into %s, which %s does not read (its path: %s)"
                 % (site_dir, sys.executable, sorted(on_path)))
        installed = sorted(f for f in os.listdir(package) if f.endswith(".py"))
        source = os.path.join(os.path.dirname(__file__), "..", "..", "python", "chargan")
        expected = sorted(f for f in os.listdir(source) if f.endswith(".py"))
        if installed != expected:
            fail("installed modules %s, source has %s" % (installed, expected))
        if "_paths.py" in installed:
            fail("the build tree's _paths.py was installed")

        env = dict(os.environ, PYTHONPATH=os.path.dirname(package), LD_LIBRARY_PATH=libdir,
                   CHARGAN_LIBRARY="", PYTHONDONTWRITEBYTECODE="1")
        code = ("import chargan; print(chargan.__file__); print(chargan.library_path); "
                "t = chargan.Tokenizer().fit('héllo'); print(t.decode(t.encode('héllo')) == 'héllo')")
        r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp,
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("import from the installed tree failed:\n" + r.stderr)
        module, library, text = r.stdout.splitlines()
        print(r.stdout, end="")
        if not module.startswith(package + os.sep):
            fail("imported %s, not the installed package" % module)
        if os.path.realpath(library) != os.path.realpath(os.path.join(libdir, "libchargan.so.0")):
            fail("loaded %s, not the installed library" % library)
        if text != "True":
            fail("the round trip through the installed library failed")
        print("ok")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
