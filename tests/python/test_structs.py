"""The ctypes mirrors match the C structs field by field (offsets, sizes),
and the library fills each mirror through its _init_sized function."""

import ctypes
import os
import subprocess
import unittest

import chargan
from chargan import _ffi
import support


class StructsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.layout = {}
        program = os.environ.get("CHARGAN_LAYOUT_PROGRAM")
        if not program:
            return
        out = subprocess.run([program], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, *numbers = line.split()
            cls.layout[key] = tuple(int(n) for n in numbers)

    def test_every_struct_matches(self):
        if not self.layout:
            self.skipTest("CHARGAN_LAYOUT_PROGRAM not set (run under meson test)")
        for cname, mirror in _ffi.STRUCTS.items():
            with self.subTest(struct=cname):
                self.assertEqual(ctypes.sizeof(mirror), self.layout[cname][0])
                c_fields = sorted(k.split(".", 1)[1] for k in self.layout
                                  if k.startswith(cname + "."))
                self.assertEqual(sorted(f[0] for f in mirror._fields_), c_fields)
                self.assertEqual(mirror._fields_[0][0], "struct_size")
                for name, _ in mirror._fields_:
                    field = getattr(mirror, name)
                    self.assertEqual((field.offset, field.size), self.layout[cname + "." + name],
                                     name)
        self.assertEqual(set(_ffi.STRUCTS), {k for k in self.layout if "." not in k})

    def test_defaults_come_from_the_library(self):
        for mirror in (chargan.TokenizerOptions, chargan.SampleOptions, chargan.TrainerConfig):
            obj = mirror()
            self.assertEqual(obj.struct_size, ctypes.sizeof(mirror))
        self.assertEqual(chargan.ModelConfig().hidden_dim, 256)
        self.assertEqual(chargan.TrainerConfig().batch, 32)
        self.assertAlmostEqual(chargan.OptimizerConfig().lr, 2e-3)
        self.assertEqual(chargan.OptimizerConfig(kind=chargan.OptimizerKind.SGD).kind, 1)
        self.assertEqual(chargan.SampleOptions().top_p, 1.0)
        d = chargan.TrainerConfig(batch=3).as_dict()
        self.assertEqual(d["batch"], 3)
        self.assertNotIn("struct_size", d)

    def test_sized_init_rejects_a_short_struct(self):
        with self.assertRaises(chargan.InvalidArgument):
            _ffi._F.chargan_trainer_config_init_sized(ctypes.byref(chargan.TrainerConfig()), 4)


if __name__ == "__main__":
    support.main()
