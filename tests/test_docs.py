"""Every Python block of the docs runs, page by page (mktestdocs, `memory=True`: a
page's blocks share one namespace, in order, as a reader runs them). Pages whose
blocks sample at full settings are slow."""

from pathlib import Path

import pytest

mktestdocs = pytest.importorskip("mktestdocs")

DOCS = Path(__file__).parent.parent / "docs"
# pages that run full-length sampling, SBC or the masterclass fits (and every tutorial):
# the slow suite
SLOW = {"numpyro.md", "pytensor.md", "equinox.md", "testing.md", "index.md", "sampling.md"}
PAGES = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))


def test_every_page_is_listed():
    """A page with Python blocks is run below (so a new page cannot be missed)."""
    with_code = {p for p in PAGES if "```python" in (DOCS / p).read_text()}
    assert with_code <= set(PAGES)
    assert with_code, "no docs page has a Python block"


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(p, marks=pytest.mark.slow) if p in SLOW or p.startswith("tutorials") else p
        for p in PAGES
    ],
)
def test_docs_page_runs(page, monkeypatch, tmp_path):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)  # files a page writes land here
    mktestdocs.check_md_file(DOCS / page, memory=True)
