"""The conformance vectors of spoolerd (conformance/vectors/produce.json in the repository): every produce case
through the kit into a spool of its own, judged by spoolerd's checker (dist/conformance/check.js, needs Node.js
and `npm run build`); every refuse case refused by the kit with a SpoolError before it writes anything."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from spoolerd_kit import InvalidOptionError, Spool, SpoolError

from .support import HAS_MSGPACK

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
VECTORS = os.path.join(REPO, "conformance", "vectors", "produce.json")
CHECKER = os.path.join(REPO, "dist", "conformance", "check.js")
NODE = os.environ.get("NODE") or shutil.which("node")


def untag(v):
    """A value of the vectors' tagged JSON (conformance/README.md, "Value tags") as a Python value."""
    if isinstance(v, list):
        return [untag(x) for x in v]
    if not isinstance(v, dict):
        return v
    if len(v) == 1:
        (tag, x), = v.items()
        if tag == "$bytes":
            return bytes.fromhex(x)
        if tag == "$float":
            return float(x)  # "NaN", "Infinity", "-Infinity" and "-0" included
        if tag == "$int":
            return int(x)
        if tag == "$function":
            return lambda: x
        if tag == "$repeat":
            return x["text"] * x["times"]
        if tag == "$map":
            return {k: untag(y) for k, y in x.items()}
    return {k: untag(y) for k, y in v.items()}


def call(spool, inp):
    """The case's input as an enqueue call: postponeMs becomes seconds (the kit rounds up to whole ms)."""
    options = {k: inp[k] for k in ("priority", "retries", "unique", "encoding") if k in inp}
    if "postponeMs" in inp:
        options["postpone"] = inp["postponeMs"] / 1000
    return spool.enqueue(inp["name"], *untag(inp.get("args", [])), **options)


@unittest.skipUnless(os.path.exists(VECTORS), f"no conformance vectors at {VECTORS} (the kit outside its repository)")
class Conformance(unittest.TestCase):
    def setUp(self):
        with open(VECTORS, encoding="utf-8") as f:
            self.cases = json.load(f)["cases"]
        self.dir = tempfile.mkdtemp(prefix="spoolerd-kit-conformance-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_the_vectors_hold_both_kinds_of_case(self):
        self.assertGreaterEqual(sum("expect" in c for c in self.cases), 10)
        self.assertGreaterEqual(sum("refuse" in c for c in self.cases), 10)

    def test_produce_cases_pass_the_checker_and_refuse_cases_are_refused(self):
        if not (NODE and os.path.exists(CHECKER)):
            self.skipTest(f"needs node and {CHECKER} (npm run build)")
        problems = []
        for case in self.cases:
            spool_dir = os.path.join(self.dir, case["id"])
            os.mkdir(spool_dir)
            try:
                call(Spool(spool_dir), case["input"])
                if "refuse" in case:
                    problems.append(f"{case['id']}: not refused ({case['why']})")
            except InvalidOptionError as e:
                if case["input"].get("encoding") == "msgpack" and not HAS_MSGPACK:
                    with open(os.path.join(spool_dir, "unsupported"), "w") as f:
                        f.write(str(e))  # the JSON-only run: MessagePack cannot be written
                    continue
                self.refused(case, spool_dir, e, problems)
            except SpoolError as e:
                self.refused(case, spool_dir, e, problems)
        self.assertEqual(problems, [])
        r = subprocess.run([NODE, CHECKER, "produced", self.dir], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, f"the checker failed:\n{r.stdout}\n{r.stderr}")
        passed = sum(line.startswith("ok") for line in r.stdout.splitlines())
        self.assertEqual(passed, len(self.cases) - (0 if HAS_MSGPACK else sum(
            c["input"].get("encoding") == "msgpack" for c in self.cases)), r.stdout)

    @staticmethod
    def refused(case, spool_dir, error, problems):
        if "refuse" not in case:
            problems.append(f"{case['id']}: refused ({error}) but must be written ({case['why']})")
        with open(os.path.join(spool_dir, "refused"), "w", encoding="utf-8") as f:
            f.write(f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    unittest.main()
