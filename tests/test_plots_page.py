"""`dvc plots show` writes a page that carries vega, vega-lite and vega-embed and names nothing to
fetch, so it draws from a file with the network off; where headless Chromium is installed (not in
CI), every chart of that page draws with no network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from project import PROJECT, copy_project, dvc

from convlab.offline_page import PACKAGE, PACKAGE_VERSION

pytestmark = pytest.mark.slow  # stages as real subprocesses

# Attributes through which a page loads something (a script, an image, a style sheet, a frame).
FETCHING = {"src", "href", "srcset", "data", "poster", "background", "action", "formaction"}
CHART_CALL = re.compile(r"vegaEmbed\('#([^']+)'")


class Page(HTMLParser):
    """What a page's markup holds: tags with their attributes, and each script's text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the project (its committed plots, no template yet): what `dvc plots show` says
    before the plots_page stage ran, then the copy with the page it writes after."""
    repo = copy_project(tmp_path_factory.mktemp("plots_page") / "repo")
    before = dvc(repo, "plots", "show", check=False)
    # The stage imports vl_convert: where it lies outside the venv (on PYTHONPATH), pass that on.
    path = os.pathsep.join(p for p in ["src", os.environ.get("PYTHONPATH", "")] if p)
    dvc(repo, "repro", "plots_page", PYTHONPATH=path)
    dvc(repo, "plots", "show")
    return repo, before.stdout + before.stderr


def test_without_the_template_dvc_says_so_and_writes_nothing(project: tuple[Path, str]) -> None:
    """DVC's words for a missing template (the ones .dvc/config and the README explain)."""
    _, said = project
    assert "HTML template has to contain '{plot_divs}'" in said, said


def test_the_page_carries_vega_and_fetches_nothing(project: tuple[Path, str]) -> None:
    repo, _ = project
    html = (repo / "dvc_plots/index.html").read_text(encoding="utf-8")
    page = Page(html)
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts and not [a for a in scripts if "src" in a], "every script is inline"
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in FETCHING:
                assert not re.match(r"\s*(https?:)?//", value, re.I), f"<{tag} {name}={value!r}>"
        assert not (tag == "meta" and attrs.get("http-equiv", "").lower() == "refresh"), attrs
    assert not re.search(r"@import|url\(\s*['\"]?\s*(https?:)?//", html, re.I), "no style sheet to load"
    # The libraries, inline, before the charts' scripts that call them.
    libraries = next(s for s in page.scripts if "window.vegaEmbed=" in s)
    assert "window.vega=" in libraries and "window.vegaLite=" in libraries
    assert page.scripts.index(libraries) == 0
    assert "vega 5." in html and "vega-lite 5." in html and "vega-embed 6." in html
    assert "{plot_divs}" not in html and "{refresh_tag}" not in html and "{scripts}" not in html
    assert "cdn.jsdelivr.net" not in html


def test_the_page_has_every_chart(project: tuple[Path, str]) -> None:
    repo, _ = project
    html = (repo / "dvc_plots/index.html").read_text(encoding="utf-8")
    page = Page(html)
    divs = {attrs["id"] for tag, attrs in page.tags if tag == "div" and "id" in attrs}
    charts = CHART_CALL.findall(html)
    assert len(charts) >= 6 and set(charts) <= divs  # at least dvc.yaml's six top-level plots
    for title in ("Validation accuracy", "Training loss", "Test accuracy of each seed"):
        assert f'"title": "{title}' in html or f'"text": "{title}' in html, title
    images = [a["src"] for tag, a in page.tags if tag == "img" and a.get("src", "").startswith("static/")]
    assert images and all((repo / "dvc_plots" / src).is_file() for src in images)


def test_the_page_is_made_with_the_release_pyproject_pins() -> None:
    pinned = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"{PACKAGE}=={PACKAGE_VERSION}" in pinned


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Headless as root, nothing fetched in the background, no host resolvable, any proxied request sent
# nowhere; console messages on stderr; 10 s of page time for the charts to draw.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--window-size=1400,6000",
]  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (it is not in CI)")
def test_every_chart_draws_in_chromium_with_no_network(project: tuple[Path, str]) -> None:
    """The page from file:// in headless Chromium, with no network: in a network namespace of its
    own where this user may make one, and with every host unresolvable and a proxy to nowhere."""
    assert CHROMIUM is not None
    repo, _ = project
    page = repo / "dvc_plots/index.html"
    offline = ["unshare", "-n"] if _can_unshare_network() else []
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [*offline, CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line and page.as_uri() in line]
    errors = [line for line in console if re.search(r"Uncaught|Error|not defined", line)]
    assert not errors, "\n".join(errors)
    dom = Page(result.stdout)
    charts = CHART_CALL.findall(page.read_text(encoding="utf-8"))
    drawn = _drawn(result.stdout, dom)
    assert set(charts) <= drawn, f"not drawn: {sorted(set(charts) - drawn)}"


def _drawn(dom_html: str, dom: Page) -> set[str]:
    """Ids of the divs vega-embed drew into (it gives each the class vega-embed and puts a canvas
    or svg of marks in it)."""
    drawn = set()
    for tag, attrs in dom.tags:
        if tag == "div" and "vega-embed" in attrs.get("class", "").split() and "id" in attrs:
            start = dom_html.find(f'id="{attrs["id"]}"')
            inside = dom_html[start : start + 4000]
            if re.search(r'<(canvas|svg)[^>]*class="marks"', inside):
                drawn.add(attrs["id"])
    return drawn


def _can_unshare_network() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
