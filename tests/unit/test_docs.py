"""docs/testing.md shows the tests that tests/integration/test_docs_examples.py runs, verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_testing_guides_example_is_the_file_ci_runs():
    guide = (ROOT / "docs" / "testing.md").read_text()
    shown = re.search(r"```python\n(import requests\n.*?)```", guide, re.DOTALL).group(1)
    runs = (ROOT / "tests" / "integration" / "test_docs_examples.py").read_text()
    assert runs.endswith(shown)
