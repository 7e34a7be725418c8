"""An HTML page that draws Vega-Lite charts with no network: vega, vega-lite and vega-embed inline.

Why not the CDN: the page `dvc plots show` and `dvc plots diff` write by default loads vega,
vega-lite and vega-embed with `<script src="https://cdn.jsdelivr.net/...">`. Opened where there
is no network (a machine like the study's, a sandbox, a train) every chart's script fails with
"vegaEmbed is not defined" and only the PNG figures appear; online, the page depends on a third
party serving those files for as long as anyone opens it. A page that carries the libraries draws
from `file://` anywhere, and draws the same in a year.

Why vl-convert-python: it is the Vega project's own package (Altair uses it for its inline HTML),
a PyPI wheel with no dependencies, so `pip install -e .` brings it pinned with everything else and
no npm step is needed; the JavaScript comes from the registry package, never committed here. Its
`javascript_bundle()` returns vega, vega-lite and vega-embed with everything they import as one
script with no `import` or `export`, which sets `window.vegaEmbed` (what each of DVC's per-chart
scripts calls), `window.vega` and `window.vegaLite`. As a classic script in the page's head it
runs before the body's chart scripts, which a module script (deferred) would not.

Versions: DVC's page loads vega 5, vega-lite 5 and vega-embed 6, and its specs declare the
Vega-Lite v5 schema. vl-convert-python 1.7.0 is the last release whose bundle has those majors
(vega 5.30, vega-lite 5.21, vega-embed 6.26); from 1.8 it carries vega 6 and vega-embed 7, and
vega-embed then warns on every chart that the spec's (or the compiled spec's) major version is not
the library's. Move to a newer release when DVC's specs move to Vega-Lite 6.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from convlab.errors import ConvlabError

PACKAGE = "vl-convert-python"
# The release pyproject.toml pins; the page is made with it only, so the same code makes the same
# page on every machine and a new release changes this file, which the plots_page stage depends on.
PACKAGE_VERSION = "1.7.0"
VEGA_LITE = "5.21"  # the newest 5.x in its vl_convert.get_vegalite_versions()

# What would end the inline <script> early, or open an HTML comment that changes how the browser
# finds its end: the pinned bundle has none, a future one is refused rather than mangled.
_BREAKS_SCRIPT = ("</script", "<!--")


class MissingLibraryError(ConvlabError):
    """vl-convert-python is not installed, or not the pinned release."""


@dataclass(frozen=True)
class Libraries:
    """The JavaScript the page carries and the versions in it."""

    script: str
    vega: str
    vega_lite: str
    vega_embed: str
    package: str

    def describe(self) -> str:
        return (
            f"vega {self.vega}, vega-lite {self.vega_lite}, vega-embed {self.vega_embed} "
            f"(from {PACKAGE} {self.package})"
        )


@cache
def libraries() -> Libraries:
    """vega, vega-lite and vega-embed as one classic script, each library's scope kept to itself."""
    try:
        import vl_convert
    except ImportError as err:
        raise MissingLibraryError(
            f"{PACKAGE} is not installed (it carries the JavaScript that draws the plots): "
            "run `pip install -e .` in the project"
        ) from err
    from importlib.metadata import version

    installed = version(PACKAGE)
    if installed != PACKAGE_VERSION:
        raise MissingLibraryError(
            f"{PACKAGE} {installed} is installed, the plots page is made with {PACKAGE_VERSION} "
            "(pyproject.toml): run `pip install -e .` in the project"
        )
    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    for text in _BREAKS_SCRIPT:
        if text in bundle.lower():
            raise ConvlabError(f"{PACKAGE}'s bundle contains {text!r}: it cannot be inlined in a page")
    # The bundle is written as a module (strict, its names its own): a function scope and "use
    # strict" keep it so as a classic script, so none of its top-level names (`t`, `n`, ...) lands
    # on window beside the globals it sets on purpose.
    script = f'(function () {{\n"use strict";\n{bundle}\n}})();'
    return Libraries(
        script=script,
        vega=vl_convert.get_vega_version(),
        vega_lite=VEGA_LITE,
        vega_embed=vl_convert.get_vega_embed_version(),
        package=installed,
    )


def offline_page(body: str, head: str = "", title: str = "Plots") -> str:
    """A complete HTML page: `head` and the libraries in its head, `body` as its body. The page
    names no URL to load: it draws from a file with the network off."""
    libs = libraries()
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{head}
<title>{title}</title>
<!-- {libs.describe()}, inline: this page loads nothing from the network -->
<script>
{libs.script}
</script>
<style>
  table {{
    border-spacing: 15px;
  }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
