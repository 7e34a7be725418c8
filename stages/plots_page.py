"""Stage plots_page: the page template `dvc plots show` and `dvc plots diff` fill, with vega,
vega-lite and vega-embed inline, so the page they write draws with no network.

`.dvc/config` names it (`plots.html_template`). DVC (dvc_render's HTML) replaces `{plot_divs}`
with one div and script per chart, `{refresh_tag}` with nothing, and `{scripts}` with its CDN
<script> tags; this template has no `{scripts}`, so those never reach the page. The file is committed
(a `cache: false` output), so `dvc plots show` and `dvc plots diff` work in a fresh clone with
nothing run; the JavaScript in it comes from the pinned vl-convert-python (convlab.offline_page).
"""

from __future__ import annotations

from convlab.errors import ConvlabError, run_main
from convlab.offline_page import libraries, offline_page
from convlab.outputs import PLOTS_PAGE as TEMPLATE
from convlab.outputs import write_text

PLOTS = "{plot_divs}"  # dvc_render.html.HTML's placeholders
REFRESH = "{refresh_tag}"
SCRIPTS = "{scripts}"


def template() -> str:
    """The page with DVC's placeholders for the charts (and for `--refresh`'s tag), none for the
    CDN scripts."""
    script = libraries().script
    for placeholder in (PLOTS, REFRESH, SCRIPTS):
        # DVC replaces each placeholder wherever it appears, inside the script too.
        if placeholder in script:
            raise ConvlabError(f"the vega bundle contains DVC's placeholder {placeholder}")
    return offline_page(body=PLOTS, head=REFRESH, title="DVC Plot")


def main(argv: list[str]) -> None:
    write_text(TEMPLATE, template())
    print(f"plots_page: {TEMPLATE}, {libraries().describe()}, inline")


if __name__ == "__main__":
    run_main("plots_page", main)
