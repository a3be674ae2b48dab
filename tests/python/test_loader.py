"""Where the package finds the library, and what it refuses: each case
imports chargan in a fresh interpreter with its own environment."""

import os
import shutil
import subprocess
import sys

import chargan
import support

PACKAGE_DIR = os.path.dirname(os.path.abspath(chargan.__file__))
BUILT = os.environ.get("CHARGAN_BUILT_LIBRARY") or chargan.library_path
PROBE = "import chargan; print(chargan.library_path); print(chargan.Tokenizer().fit('ab').vocab_size)"


def system_has_libchargan():
    env = dict(os.environ, LD_LIBRARY_PATH="")
    code = "import ctypes; ctypes.CDLL('libchargan.so.0')"
    return subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True).returncode == 0


class LoaderTest(support.TempDirTestCase):
    def run_python(self, pythonpath, library="", ld_path="", code=PROBE):
        env = dict(os.environ, PYTHONPATH=pythonpath, CHARGAN_LIBRARY=library,
                   LD_LIBRARY_PATH=ld_path, PYTHONDONTWRITEBYTECODE="1")
        return subprocess.run([sys.executable, "-c", code], env=env, cwd=self.tmp,
                              capture_output=True, text=True)

    def assert_loads(self, result, path):
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()  # a path may hold spaces
        self.assertEqual(os.path.realpath(lines[0]), os.path.realpath(path))
        self.assertEqual(lines[1], "4")

    def assert_import_error(self, result, *needles):
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("ImportError", result.stderr)
        for n in needles:
            self.assertIn(n, result.stderr)

    def copy_package(self, where, paths_library=None):
        """A copy of the package's modules under where/chargan."""
        dest = os.path.join(where, "chargan")
        # the files' contents, not their modes: a read-only source tree
        # would give a copy _paths.py cannot be written into
        shutil.copytree(PACKAGE_DIR, dest, copy_function=shutil.copyfile,
                        ignore=shutil.ignore_patterns("__pycache__", "_paths.py*"))
        os.chmod(dest, 0o755)  # copytree gives the directory the source's mode
        if paths_library is not None:
            with open(os.path.join(dest, "_paths.py"), "w") as f:
                f.write("LIBRARY = %r\n" % paths_library)
        return where

    def lib_dir(self):
        d = self.path("lib")
        os.makedirs(d, exist_ok=True)
        link = os.path.join(d, "libchargan.so.0")
        if not os.path.exists(link):
            os.symlink(BUILT, link)
        return d

    def test_environment_variable(self):
        self.assert_loads(self.run_python(os.path.dirname(PACKAGE_DIR), library=BUILT), BUILT)

    def test_build_tree(self):
        build_py = os.environ.get("CHARGAN_BUILD_PYTHONPATH")
        if not build_py:
            self.skipTest("CHARGAN_BUILD_PYTHONPATH not set (run under meson test)")
        self.assertTrue(os.path.exists(os.path.join(build_py, "chargan", "_paths.py")))
        self.assert_loads(self.run_python(build_py), BUILT)

    def test_source_checkout_build_dir(self):
        root = self.path("checkout")
        os.makedirs(os.path.join(root, "include"))
        open(os.path.join(root, "include", "chargan.h"), "w").close()
        os.makedirs(os.path.join(root, "build", "libchargan"))
        os.symlink(BUILT, os.path.join(root, "build", "libchargan", "libchargan.so.0"))
        python_dir = self.copy_package(os.path.join(root, "python"))
        self.assert_loads(self.run_python(python_dir), BUILT)

    def test_system_loader(self):
        # A stale _paths.py (build tree deleted) falls through to the loader.
        where = self.copy_package(self.path("site"), paths_library=self.path("gone.so"))
        self.assert_loads(self.run_python(where, ld_path=self.lib_dir()), BUILT)

    def test_not_found(self):
        if system_has_libchargan():
            self.skipTest("a libchargan.so.0 is installed system-wide")
        where = self.copy_package(self.path("site"), paths_library=self.path("gone.so"))
        result = self.run_python(where)
        self.assert_import_error(result, "cannot find libchargan", "gone.so", "not there",
                                 "libchargan.so.0 (the system loader", "CHARGAN_LIBRARY")

    def test_bad_environment_variable(self):
        missing = self.path("nope.so")
        self.assert_import_error(self.run_python(os.path.dirname(PACKAGE_DIR), library=missing),
                                 "CHARGAN_LIBRARY=%r" % missing)

    def test_wrong_major_version(self):
        fake = os.environ.get("CHARGAN_FAKE_MAJOR")
        if not fake:
            self.skipTest("CHARGAN_FAKE_MAJOR not set (run under meson test)")
        self.assert_import_error(self.run_python(os.path.dirname(PACKAGE_DIR), library=fake),
                                 "libchargan 1.1.0", "needs major version 0")

    def test_incomplete_library(self):
        fake = os.environ.get("CHARGAN_FAKE_EMPTY")
        if not fake:
            self.skipTest("CHARGAN_FAKE_EMPTY not set (run under meson test)")
        self.assert_import_error(self.run_python(os.path.dirname(PACKAGE_DIR), library=fake),
                                 "lacks", "chargan_model_new")

    def test_not_libchargan(self):
        libm = "libm.so.6"
        self.assert_import_error(self.run_python(os.path.dirname(PACKAGE_DIR), library=libm),
                                 "is not libchargan")

    def test_package_version(self):
        project = os.environ.get("CHARGAN_PROJECT_VERSION")
        if not project:
            self.skipTest("CHARGAN_PROJECT_VERSION not set (run under meson test)")
        self.assertEqual(chargan.__version__, project)
        self.assertEqual(int(project.split(".")[0]), chargan.EXPECTED_MAJOR)


if __name__ == "__main__":
    support.main()
