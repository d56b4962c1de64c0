"""The README's quickstart runs as written."""

import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_quickstart_runs():
    block = re.search(r"## Quickstart\s+```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README quickstart", "exec"), namespace)
    idata = namespace["idata"]
    assert idata.posterior["theta"].dims == ("chain", "draw", "school")
    assert idata.posterior["tau"].shape == (4, 1000)
