"""Turn `dvc exp show --json` into a table and a plot of accuracy against one swept param.

    dvc exp run --queue -S 'dropout.fc=0.2,0.3,0.4,0.5' && dvc queue start -j 2
    python tools/sweep.py dropout.fc            # after the queue has finished

A grid sweeps several params: name the others with --by, and each gets a column and each of
their combinations its own line in the plot:

    dvc exp run --queue -S 'staged_dropout.fc=0.3,0.5' -S 'staged_dropout.pool2=0.1,0.2'
    python tools/sweep.py staged_dropout.fc --by staged_dropout.pool2

For a param of one variant's section (dropout.fc) it shows that variant's best validation and
test accuracy; for a shared param (seed, train.lr, data.normalize) all three variants'. Every
committed result and every experiment is one row, so a value run twice shows twice. Writes
<out>/<param>.md and <out>/<param>.png and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

VARIANTS = ("baseline", "dropout", "staged_dropout")


def experiments(shown: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(name, data) of every commit row and every finished experiment in `dvc exp show --json`
    output. Queued and running experiments are left out: a running one shows its temporary
    copy's half-written metrics, and old results of the other variants."""
    found = []
    for row in shown:
        if row.get("rev") != "workspace" and row.get("data"):
            found.append((row.get("name") or row["rev"][:7], row["data"]))
        for group in row.get("experiments") or []:
            if (group.get("executor") or {}).get("state", "success") != "success":
                continue
            for rev in group.get("revs", []):
                if rev.get("data"):
                    found.append((rev.get("name") or rev["rev"][:7], rev["data"]))
    return found


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def sweep_rows(
    shown: list[dict[str, Any]], param: str, by: tuple[str, ...] = ()
) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows of {value, experiment, <variant> val, <variant> test}, sorted by value. Accuracies are
    means over seeds; where an experiment ran several (train.seeds), row["std"] has their spread."""
    section = param.split(".")[0]
    variants = [section] if section in VARIANTS else list(VARIANTS)
    rows = []
    for name, data in experiments(shown):
        params = data.get("params", {}).get("params.yaml", {}).get("data", {})
        value = _lookup(params, param)
        if value is None:
            continue
        metrics = data.get("metrics") or {}
        row: dict[str, Any] = {
            "value": value,
            **{key: _lookup(params, key) for key in by},
            "experiment": name,
        }
        spread: dict[str, float] = {}
        for variant in variants:
            train = (metrics.get(f"metrics/train_{variant}.json") or {}).get("data", {})
            test = (metrics.get("metrics/test.json") or {}).get("data", {}).get(variant, {})
            for column, source, key in (("val", train, "best_val_acc"), ("test", test, "test_acc")):
                row[f"{variant} {column}"] = source.get(key)
                if source.get(f"{key}_std") is not None:
                    spread[f"{variant} {column}"] = source[f"{key}_std"]
        rows.append(row | {"std": spread})
    rows.sort(key=lambda r: ([str(r[key]) for key in by], str(type(r["value"])), r["value"], r["experiment"]))
    return variants, rows


def markdown(param: str, rows: list[dict[str, Any]]) -> str:
    columns = [c for c in rows[0] if c != "std"] if rows else ["value", "experiment"]
    lines = ["| " + " | ".join(param if c == "value" else c for c in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        cells = []
        for c in columns:
            v, std = row[c], row["std"].get(c)
            if isinstance(v, float) and c.endswith((" val", " test")):
                cells.append(f"{100 * v:.1f}%" + (f" ± {100 * std:.1f}" if std is not None else ""))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(
    param: str, variants: list[str], rows: list[dict[str, Any]], path: Path, by: tuple[str, ...] = ()
) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    numeric = all(isinstance(r["value"], (int, float)) and not isinstance(r["value"], bool) for r in rows)
    labels = sorted({r["value"] for r in rows}, key=str) if not numeric else None
    groups = sorted({tuple(str(r[key]) for key in by) for r in rows})
    for group, variant in ((g, v) for g in groups for v in variants):
        for kind, marker in (("val", "o"), ("test", "s")):
            column = f"{variant} {kind}"
            points = [
                (r["value"], r[column], r["std"].get(column, 0.0))
                for r in rows
                if r[column] is not None and tuple(str(r[key]) for key in by) == group
            ]
            if not points:
                continue
            where = ", ".join(f"{key.split('.')[-1]}={v}" for key, v in zip(by, group, strict=True))
            xs = [x if numeric else labels.index(x) for x, _, _ in points]  # type: ignore[union-attr]
            ax.errorbar(  # error bars: the seeds' standard deviation, where there were several
                xs,
                [y for _, y, _ in points],
                yerr=[e for _, _, e in points],
                marker=marker,
                linestyle="-" if numeric else "",
                capsize=3,
                label=f"{variant} {'best validation' if kind == 'val' else 'test'}"
                + (f" ({where})" if by else ""),
            )
    if not numeric:
        ax.set_xticks(range(len(labels)), [str(v) for v in labels])  # type: ignore[arg-type]
    ax.set_xlabel(param)
    ax.set_ylabel("accuracy")
    ax.set_title(f"accuracy against {param}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


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
        "--rev", default="HEAD", help="the commit the experiments were queued from (default: HEAD)"
    )
    parser.add_argument("--json", type=Path, help="saved `dvc exp show --json` output (default: run it)")
    parser.add_argument("--out", type=Path, default=Path("sweeps"), help="folder for the table and plot")
    args = parser.parse_args()
    if args.json:
        shown = json.loads(args.json.read_text())
    else:
        result = subprocess.run(
            [sys.executable, "-m", "dvc", "exp", "show", "--json", "--rev", args.rev],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            sys.exit(f"sweep: error: dvc exp show failed:\n{result.stderr}")
        shown = json.loads(result.stdout)
    by = tuple(args.by)
    variants, rows = sweep_rows(shown, args.param, by)
    if not rows:
        sys.exit(
            f"sweep: error: no experiment has a value for {args.param!r}; is the name as in params.yaml?"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(args.param, rows)
    (args.out / f"{args.param}.md").write_text(table)
    plot(args.param, variants, rows, args.out / f"{args.param}.png", by)
    print(table, end="")
    print(f"sweep: wrote {args.out / (args.param + '.md')} and {args.out / (args.param + '.png')}")


if __name__ == "__main__":
    main()
