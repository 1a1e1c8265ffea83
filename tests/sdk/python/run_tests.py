"""Runs the Python SDK suites with unittest and prints `PYTHON-RESULT passed=N failed=N
skipped=N`, counting every discovered test that did not pass (including those a failing
setUpClass never ran) as failed."""

import sys
import unittest

MODULES = ["test_flagsmith_sdk", "test_openfeature", "test_ofrep"]


class CountingResult(unittest.TextTestResult):
    passed = 0

    def addSuccess(self, test):  # noqa: N802 - unittest's name
        super().addSuccess(test)
        self.passed += 1


def main() -> int:
    suite = unittest.defaultTestLoader.loadTestsFromNames(MODULES)
    total = suite.countTestCases()
    runner = unittest.TextTestRunner(verbosity=2, resultclass=CountingResult, stream=sys.stdout)
    result = runner.run(suite)
    skipped = len(result.skipped)
    failed = total - result.passed - skipped
    print(f"PYTHON-RESULT passed={result.passed} failed={failed} skipped={skipped}", flush=True)
    return 0 if failed == 0 and result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
