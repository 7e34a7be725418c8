"""Turn `dvc exp show --json` into a table and a plot of accuracy against one swept param.

    dvc exp run --queue -S 'dropout.fc=0.2,0.3,0.4,0.5' && dvc queue start -j 2
    python tools/sweep.py dropout.fc            # after the queue has finished

A grid sweeps several params: name the others with --by, and each gets a column and each of
their combinations its own line in the plot:

    dvc exp run --queue -S 'staged_dropout.fc=0.3,0.5' -S 'staged_dropout.pool2=0.1,0.2'
    python tools/sweep.py staged_dropout.fc --by staged_dropout.pool2

The rows are the finished experiments of the commit (--rev, default HEAD) that changed no param
of that commit but the swept ones: the commit's own result and an experiment that also changed,
say, train.lr are not part of the sweep. --exp NAME ... names the rows instead, whatever they
changed (a commit by its branch name or short rev).

For a param of one variant's section (dropout.fc) it shows that variant's best validation and
test accuracy; for a shared param (seed, train.lr, data.normalize) all three variants'. Every
experiment is one row, so a value run twice shows twice. Writes <out>/<param>.md and
<out>/<param>.png and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

from convlab.markdown import markdown_table

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

VARIANTS = ("baseline", "dropout", "staged_dropout")


def records(shown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per commit and per finished experiment in `dvc exp show --json` output, with the
    rev of the experiment's baseline commit (None for a commit). Queued and running experiments are
    left out: a running one shows its temporary copy's half-written metrics, and old results of the
    other variants; so is a failed one, which has no data."""
    found = []
    for row in shown:
        if row.get("rev") != "workspace" and row.get("data"):
            found.append(_record(row, None))
        for group in row.get("experiments") or []:
            if (group.get("executor") or {}).get("state", "success") == "success":
                found += [_record(rev, row["rev"]) for rev in group.get("revs", []) if rev.get("data")]
    return found


def _record(rev: dict[str, Any], baseline: str | None) -> dict[str, Any]:
    def contents(files: dict[str, Any] | None) -> dict[str, Any]:
        return {name: (file or {}).get("data") or {} for name, file in (files or {}).items()}

    data = rev["data"]
    return {
        "rev": rev["rev"],
        "experiment": rev.get("name") or rev["rev"][:7],
        "baseline": baseline,
        "params": contents(data.get("params")),
        "metrics": contents(data.get("metrics")),
    }


def runs(shown: list[dict[str, Any]]) -> pd.DataFrame:
    """The records by rev, one column per param and metric: params.params.yaml.dropout.fc,
    metrics.metrics/test.json.dropout.test_acc."""
    found = records(shown)
    if not found:
        return pd.DataFrame(columns=["experiment", "baseline"], index=pd.Index([], name="rev"))
    return pd.json_normalize(found, sep=".").set_index("rev")


def column(param: str) -> str:
    """The column of a param as typed with -S: dropout.fc (params.yaml) or other.yaml:key."""
    file, _, key = param.rpartition(":")
    return f"params.{file or 'params.yaml'}.{key}"


def changed(frame: pd.DataFrame) -> pd.DataFrame:
    """True where a param of a row differs from its baseline commit's value. A param that only one
    of them has differs; every param of a commit, which has no baseline, differs."""
    params = frame.filter(regex=r"^params\.")
    base = params.reindex(frame["baseline"]).set_axis(frame.index)
    return params.ne(base) & ~(params.isna() & base.isna())


def selected(frame: pd.DataFrame, swept: Sequence[str], named: Sequence[str] = ()) -> pd.Series:
    """The named rows or, with no names, the experiments that changed nothing but swept params. One
    that changed none is the sweep's point at the committed value, run as an experiment."""
    if named:
        return frame["experiment"].isin(named)
    others = changed(frame).drop(columns=[column(p) for p in swept], errors="ignore")
    return frame["baseline"].notna() & ~others.any(axis=1)


def _sortable(values: pd.Series) -> pd.Series:
    """Values of one type sort as themselves (0.5 before 10). Mixed types cannot be compared (YAML
    reads `-S train.compile=on` as true, beside "auto"): they sort by type name, then as text."""
    if values.map(type).nunique() <= 1:
        return values
    return values.map(lambda v: (type(v).__name__, str(v)))


def _accuracies(variants: Sequence[str]) -> dict[str, str]:
    """{metric column: table column} of each variant's best validation and test accuracy and std."""
    names = {}
    for variant in variants:
        for kind, source in (
            ("val", f"metrics.metrics/train_{variant}.json.best_val_acc"),
            ("test", f"metrics.metrics/test.json.{variant}.test_acc"),
        ):
            names |= {source: f"{variant} {kind}", f"{source}_std": f"{variant} {kind} std"}
    return names


def sweep_rows(
    shown: list[dict[str, Any]], param: str, by: Sequence[str] = (), named: Sequence[str] = ()
) -> tuple[list[str], pd.DataFrame]:
    """The sweep's table: columns param, *by, experiment, "<variant> val", "<variant> test" and
    their " std" (the seeds' spread, NaN for one seed), sorted by the --by params, then param.
    Accuracies are means over seeds. Rows without a value for param are left out."""
    section = param.split(".")[0]
    variants = [section] if section in VARIANTS else list(VARIANTS)
    keys = list(dict.fromkeys([param, *by]))
    names = {column(key): key for key in keys} | {"experiment": "experiment"} | _accuracies(variants)
    frame = runs(shown)
    table = frame[selected(frame, keys, named)].reindex(columns=list(names)).rename(columns=names)
    table = table.dropna(subset=[param])
    return variants, table.sort_values([*by, param, "experiment"], key=_sortable, ignore_index=True)


def _percent(mean: float, std: float) -> str:
    if pd.isna(mean):
        return ""
    return f"{100 * mean:.1f}%" + (f" ± {100 * std:.1f}" if pd.notna(std) else "")


def markdown(table: pd.DataFrame) -> str:
    """The table in Markdown (values as given, cells unpadded: `convlab.markdown`), accuracies in
    percent with ± the seeds' std where there were several."""
    accuracies = [c for c in table if c.endswith((" val", " test"))]
    shown = table.drop(columns=[f"{c} std" for c in accuracies]).astype(object)
    for c in accuracies:
        shown[c] = [_percent(mean, std) for mean, std in zip(table[c], table[f"{c} std"], strict=True)]
    return markdown_table(shown.where(shown.notna(), "")) + "\n"


def draw(ax: Any, param: str, variants: Sequence[str], table: pd.DataFrame, by: Sequence[str] = ()) -> None:
    """Accuracy against param on ax: a marker per experiment with the seeds' std as error bars, and
    for numeric values a line through the mean of each value. Joining the markers themselves would
    draw a vertical stroke wherever a value was run twice; the mean line reads as the trend and
    keeps every run visible, and where no value repeats it passes through every marker. Values that
    are not numbers get markers only: a line between unordered labels would suggest a trend."""
    values = table[param]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    labels = sorted(set(values), key=str)
    table = table.assign(x=values if numeric else values.map(labels.index))
    groups = table.groupby(list(by), sort=False, dropna=False) if by else [((), table)]
    for group, rows in groups:
        where = ", ".join(f"{key.split('.')[-1]}={v}" for key, v in zip(by, group, strict=True))
        for variant in variants:
            for kind, marker in (("val", "o"), ("test", "s")):
                name = f"{variant} {kind}"
                points = rows.dropna(subset=[name])
                if points.empty:
                    continue
                bars = ax.errorbar(
                    points["x"],
                    points[name],
                    yerr=points[f"{name} std"].fillna(0.0),
                    marker=marker,
                    linestyle="",
                    capsize=3,
                    label=f"{variant} {'best validation' if kind == 'val' else 'test'}"
                    + (f" ({where})" if by else ""),
                )
                if numeric:
                    means = points.groupby("x")[name].mean()
                    ax.plot(means.index, means.to_numpy(), color=bars.lines[0].get_color())
    if not numeric:
        ax.set_xticks(range(len(labels)), [str(v) for v in labels])
    ax.set_xlabel(param)
    ax.set_ylabel("accuracy")
    ax.set_title(f"accuracy against {param}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot(
    param: str, variants: Sequence[str], table: pd.DataFrame, path: Path, by: Sequence[str] = ()
) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    draw(ax, param, variants, table, by)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def exp_show(rev: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", "--rev", rev], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"sweep: error: dvc exp show failed:\n{result.stderr}")
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("param", help="the swept param, as typed with -S (e.g. dropout.fc)")
    parser.add_argument(
        "--by",
        nargs="+",
        default=[],
        metavar="PARAM",
        help="the grid's other swept params: columns and lines",
    )
    parser.add_argument(
        "--exp",
        nargs="+",
        default=[],
        metavar="NAME",
        help="exactly these experiments (or commits), whatever params they changed",
    )
    parser.add_argument(
        "--rev", default="HEAD", help="the commit the experiments were queued from (default: HEAD)"
    )
    parser.add_argument("--json", type=Path, help="saved `dvc exp show --json` output (default: run it)")
    parser.add_argument("--out", type=Path, default=Path("sweeps"), help="folder for the table and plot")
    args = parser.parse_args()
    shown = json.loads(args.json.read_text()) if args.json else exp_show(args.rev)
    variants, table = sweep_rows(shown, args.param, args.by, args.exp)
    # A mistyped name would silently drop its row from a comparison the user chose row by row.
    if missing := [name for name in args.exp if name not in set(table["experiment"])]:
        sys.exit(f"sweep: error: no finished experiment {', '.join(missing)} with a value for {args.param!r}")
    if table.empty:
        sys.exit(
            f"sweep: error: no finished experiment changed only {', '.join([args.param, *args.by])}; "
            "is the name as in params.yaml? (--exp names experiments that changed more)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(table)
    (args.out / f"{args.param}.md").write_text(text)
    plot(args.param, variants, table, args.out / f"{args.param}.png", args.by)
    print(text, end="")
    print(f"sweep: wrote {args.out / (args.param + '.md')} and {args.out / (args.param + '.png')}")


if __name__ == "__main__":
    main()
