"""blobnet.atomic_write: the file appears whole or not at all, with the mode a plain open() gives it."""
import os
import shutil
import stat
import tempfile
import unittest
from pathlib import Path

from scripts.blobnet import atomic_write, atomic_write_json


class AtomicWriteTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="bm-atomic-"))
        self.addCleanup(shutil.rmtree, self.tmp)
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)

    def mode(self, path):
        return stat.S_IMODE(path.stat().st_mode)

    def test_the_umask_sets_the_mode(self):
        path = self.tmp / "state.json"
        atomic_write_json(path, {"a": 1})
        self.assertEqual(path.read_text(), '{\n "a": 1\n}\n')
        self.assertEqual(self.mode(path), 0o644)
        os.umask(0o077)
        atomic_write_json(path, {"a": 2})
        self.assertEqual(self.mode(path), 0o600)
        self.assertEqual(os.umask(0o077), 0o077, "the umask was changed")
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["state.json"])

    def test_a_failed_write_leaves_the_old_file_and_no_temporary(self):
        path = self.tmp / "state.json"
        atomic_write_json(path, {"a": 1})

        def fail(tmp):
            Path(tmp).write_text("half")
            raise OSError("disk full")

        with self.assertRaises(OSError):
            atomic_write(path, fail)
        self.assertEqual(path.read_text(), '{\n "a": 1\n}\n')
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["state.json"])


if __name__ == "__main__":
    unittest.main()
