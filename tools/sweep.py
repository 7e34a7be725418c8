"""Turn `dvc exp show --json` into a table and a plot of accuracy against one swept param.

    dvc exp run --queue -S 'dropout.fc=0.2,0.3,0.4,0.5' && dvc queue start -j 2
    python tools/sweep.py dropout.fc            # after the queue has finished

A grid sweeps several params: name the others with --by, and each gets a column and each of
their combinations its own line in the plot:

    dvc exp run --queue -S 'staged_dropout.fc=0.3,0.5' -S 'staged_dropout.pool2=0.1,0.2'
    python tools/sweep.py staged_dropout.fc --by staged_dropout.pool2

The rows are finished experiments of the commit (--rev, default HEAD) that differ from each other
only in the swept params (PARAM and the --by ones). Experiments are grouped by everything else:
every other param and the code (each .py file a stage depends on). The table is the group with the
most values of the swept params (then the most experiments, then the newest); it says which params
it held fixed, where experiments differ in them, and which experiments it left out. So a sweep
queued after `-S train.seeds=1`, or one that also set other params for every point, is tabled as
run. The commit's own result is not a row; --exp NAME ... names the rows instead, whatever they
changed (a commit by its branch name or short rev), and the table says what else differs.

For a param of one variant's section (dropout.fc) it shows that variant's validation and test
accuracy; for a shared param (seed, train.lr, data.normalize) all three variants'. Each is the
metric `dvc exp show` shows, the mean over the experiment's seeds; where it ran several seeds,
`± std` is their spread, read from the runs the experiment's commit holds (plots/train_<v>/runs.csv,
plots/test/<v>.csv, git-tracked). Every experiment is one row, so a value run twice shows twice.
Writes <out>/<param>.md and <out>/<param>.png and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

from convlab.errors import ConvlabError, run_stage
from convlab.markdown import markdown_table
from convlab.params import VARIANTS
from convlab.stage_files import RUNS, TEST_METRIC, TESTS, VAL_METRIC, Metric, Table, read_at
from convlab.stats import summarize

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class SweepError(ConvlabError):
    """What the sweep cannot table, said in one line."""


class ShapeError(SweepError):
    """Input that is not `dvc exp show --json` output: says where in it."""


@dataclass(frozen=True)
class Accuracy:
    """One accuracy of a variant: its metric (the mean over the seeds, which `dvc exp show` has)
    and the table of the runs it is the mean of, whose column `runs_column` holds each seed's."""

    metric: Metric
    runs: Table
    runs_column: str

    @property
    def kind(self) -> str:
        return self.metric.key  # "val", "test": the table's column is "<variant> <kind>"


ACCURACIES = (Accuracy(VAL_METRIC, RUNS, "best_val_acc"), Accuracy(TEST_METRIC, TESTS, "test_acc"))

# A param's value in an experiment that does not have the param (its params.yaml is older).
ABSENT = "(absent)"


@dataclass
class Record:
    """One commit or finished experiment of `dvc exp show --json`."""

    rev: str
    experiment: str  # its name; a commit's branch name or short rev
    baseline: str | None  # the rev of an experiment's commit; None for a commit
    timestamp: str
    params: dict[str, Any]  # as typed with -S: dropout.fc, other.yaml:key
    metrics: dict[str, float]  # by Metric.column()
    code: dict[str, str] = field(default_factory=dict)  # .py dependency: its hash


# --- reading `dvc exp show --json` -----------------------------------------------------------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ShapeError(f"{where} is {type(value).__name__}, not an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ShapeError(f"{where} is {type(value).__name__}, not a list")
    return value


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _params(files: Mapping[str, Any]) -> dict[str, Any]:
    """Params by the name -S takes: `dropout.fc` for params.yaml, `other.yaml:key` for other files."""
    params: dict[str, Any] = {}
    for name, file in files.items():
        data = (file or {}).get("data") if isinstance(file, dict) else None
        prefix = "" if name == "params.yaml" else f"{name}:"
        params |= _flatten(data if isinstance(data, dict) else {}, prefix)
    return params


def _metrics(files: Mapping[str, Any]) -> dict[str, float]:
    """Each variant's accuracies, by the column name `Metric.column()` gives them."""
    found = {}
    for variant in VARIANTS:
        for accuracy in ACCURACIES:
            name = accuracy.metric.column(variant)
            file, _, keys = name.partition(":")
            entry = files.get(file)
            value: Any = entry.get("data") if isinstance(entry, dict) else None
            for key in keys.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found[name] = float(value)
    return found


def _record(rev: dict[str, Any], baseline: str | None, where: str) -> Record:
    data = _object(rev["data"], f"{where}.data")
    deps = data.get("deps") if isinstance(data.get("deps"), dict) else {}
    return Record(
        rev=str(rev.get("rev")),
        experiment=str(rev.get("name") or str(rev.get("rev"))[:7]),
        baseline=baseline,
        timestamp=str(data.get("timestamp") or ""),
        params=_params(_object(data.get("params") or {}, f"{where}.data.params")),
        metrics=_metrics(_object(data.get("metrics") or {}, f"{where}.data.metrics")),
        code={
            path: str(dep.get("hash") if isinstance(dep, dict) else dep)
            for path, dep in deps.items()
            if path.endswith(".py")
        },
    )


def records(shown: Any) -> list[Record]:
    """One record per commit and per finished experiment in `dvc exp show --json` output. Queued and
    running experiments are left out (a running one shows its temporary copy's half-written metrics
    and old results of the other variants), and so is a failed one, which has no data."""
    found = []
    for i, row in enumerate(_list(shown, "the top level")):
        row = _object(row, f"[{i}]")
        if row.get("rev") != "workspace" and row.get("data"):
            found.append(_record(row, None, f"[{i}]"))
        for j, group in enumerate(_list(row.get("experiments"), f"[{i}].experiments")):
            group = _object(group, f"[{i}].experiments[{j}]")
            executor = group.get("executor")
            if isinstance(executor, dict) and executor.get("state", "success") != "success":
                continue
            for k, rev in enumerate(_list(group.get("revs"), f"[{i}].experiments[{j}].revs")):
                rev = _object(rev, f"[{i}].experiments[{j}].revs[{k}]")
                if rev.get("data"):
                    found.append(_record(rev, str(row.get("rev")), f"[{i}].experiments[{j}].revs[{k}]"))
    return found


# --- which experiments are the sweep ---------------------------------------------------------------


def _key(value: Any) -> str:
    """A value as a hashable, comparable key: lists and mappings (YAML allows them) included."""
    return json.dumps(value, sort_keys=True, default=str)


def _facts(record: Record, swept: Sequence[str]) -> dict[str, Any]:
    """Everything about a record that decides its results, but the swept params."""
    facts = {name: value for name, value in record.params.items() if name not in swept}
    return facts | {f"code {path}": digest for path, digest in record.code.items()}


def _differing(records: Iterable[Record], swept: Sequence[str]) -> list[str]:
    """The facts (params, code) whose values are not the same in every record."""
    records = list(records)
    names = sorted({name for r in records for name in _facts(r, swept)})
    return [n for n in names if len({_key(_facts(r, swept).get(n, ABSENT)) for r in records}) > 1]


def _said(record: Record, names: Sequence[str], swept: Sequence[str]) -> str:
    facts = _facts(record, swept)
    parts = []
    for name in names:
        value = facts.get(name, ABSENT)
        parts.append(f"{name} {str(value)[:7]}" if name.startswith("code ") else f"{name}={value}")
    return ", ".join(parts)


@dataclass
class Sweep:
    rows: list[Record]
    notes: list[str]  # what the table held fixed, what it left out, what else differs


def select(found: Sequence[Record], swept: Sequence[str], named: Sequence[str] = ()) -> Sweep:
    """The rows: the named records or, with no names, the largest group of finished experiments
    that differ from each other only in the swept params (see the module's notes)."""
    param = swept[0]
    if named:
        rows = [r for r in found if r.experiment in named and param in r.params]
        differ = _differing(rows, swept)
        return Sweep(rows, [f"The named rows also differ in {', '.join(differ)}."] if differ else [])
    experiments = [r for r in found if r.baseline is not None and param in r.params]
    groups: dict[tuple[str, ...], list[Record]] = {}
    names = sorted({name for r in experiments for name in _facts(r, swept)})
    for r in experiments:
        facts = _facts(r, swept)
        groups.setdefault(tuple(_key(facts.get(n, ABSENT)) for n in names), []).append(r)

    def values(group: list[Record]) -> int:
        return len({tuple(_key(r.params.get(p, ABSENT)) for p in swept) for r in group})

    swept_groups = [g for g in groups.values() if values(g) > 1]
    if not experiments:
        raise SweepError(f"no finished experiment has {param}; is the name as in params.yaml?")
    if len(experiments) == 1:
        raise SweepError(
            f"only one finished experiment ({experiments[0].experiment}) has {param}: a sweep needs two "
            "(--exp names the rows instead)"
        )
    if not swept_groups:
        raise SweepError(
            f"no two finished experiments differ in {' and '.join(swept)} alone: of the {len(experiments)} "
            f"that have {param}, no two have other values of it and the same other params and code "
            "(--exp names the rows instead)"
        )
    chosen = max(swept_groups, key=lambda g: (values(g), len(g), max(r.timestamp for r in g)))
    # Held fixed: what the table's experiments share but other experiments or their commits do not.
    commits = {r.rev: r for r in found if r.baseline is None}
    context = experiments + [commits[r.baseline] for r in experiments if r.baseline in commits]
    fixed = _differing(context, swept)
    notes = [f"Held fixed: {_said(chosen[0], fixed, swept)}."] if fixed else []
    others = [g for g in groups.values() if g is not chosen]
    if others:
        left = "; ".join(
            f"{_said(g[0], _differing([chosen[0], g[0]], swept), swept)} "
            f"({', '.join(r.experiment for r in g)})"
            for g in others
        )
        notes.append(
            f"Left out, differing in more than {', '.join(swept)}: {left}. "
            "Name rows with --exp, or add a param to --by."
        )
    return Sweep(chosen, notes)


# --- each seed's accuracy, from the experiment's commit --------------------------------------------


RunsReader = Callable[[str, str, Accuracy], "list[float] | None"]


def git_runs(rev: str, variant: str, accuracy: Accuracy) -> list[float] | None:
    """Each seed's accuracy as the commit `rev` holds it in its runs table (stage_files.read_at);
    None when the commit or the file is not there (output saved on another machine) or the file
    is damaged."""
    try:
        rows = read_at(accuracy.runs, rev, variant)
    except ConvlabError:
        return None
    return [float(row[accuracy.runs_column]) for row in rows]


# --- the table -------------------------------------------------------------------------------------


def _sortable(values: pd.Series) -> pd.Series:
    """Values of one type sort as themselves (0.5 before 10). Mixed types cannot be compared (YAML
    reads `-S train.compile=on` as true, beside "auto"): they sort by type name, then as text."""
    if values.map(type).nunique() <= 1:
        return values
    return values.map(lambda v: (type(v).__name__, str(v)))


def variants_of(param: str) -> list[str]:
    section = param.split(".")[0]
    return [section] if section in VARIANTS else list(VARIANTS)


@dataclass
class SweepTable:
    param: str
    by: list[str]
    variants: list[str]
    # param, *by, experiment, "<variant> <kind>" and its " std" (NaN: one seed, or runs not read)
    frame: pd.DataFrame
    notes: list[str]


def sweep_table(
    shown: Any,
    param: str,
    by: Sequence[str] = (),
    named: Sequence[str] = (),
    read_runs: RunsReader = git_runs,
) -> SweepTable:
    """The sweep's table, sorted by the --by params, then param, then experiment. Accuracies are
    the metrics (means over seeds); std is the seeds' sample std where there were several."""
    swept = list(dict.fromkeys([param, *by]))
    variants = variants_of(param)
    sweep = select(records(shown), swept, named)
    rows = []
    unread = []
    for r in sweep.rows:
        row: dict[str, Any] = {key: r.params.get(key) for key in swept} | {"experiment": r.experiment}
        for variant in variants:
            for accuracy in ACCURACIES:
                name = f"{variant} {accuracy.kind}"
                row[name] = r.metrics.get(accuracy.metric.column(variant), float("nan"))
                # One seed has no spread: its runs need not be read.
                several = pd.notna(row[name]) and r.params.get("train.seeds") != 1
                runs = read_runs(r.rev, variant, accuracy) if several else []
                if runs is None:
                    unread.append(r.experiment)
                std = summarize(runs).std if runs else None
                row[f"{name} std"] = float("nan") if std is None else std
        rows.append(row)
    columns = [*swept, "experiment"] + [
        f"{v} {a.kind}{s}" for v in variants for a in ACCURACIES for s in ("", " std")
    ]
    frame = pd.DataFrame(rows, columns=columns)
    order = [*swept[1:], param, "experiment"]
    frame = frame.sort_values(order, key=_sortable, ignore_index=True) if rows else frame
    notes = list(sweep.notes)
    if unread:
        notes.append(
            f"No ± for {', '.join(dict.fromkeys(unread))}: no readable runs tables in this git repository."
        )
    return SweepTable(param, list(by), variants, frame, notes)


def _percent(mean: float, std: float) -> str:
    if pd.isna(mean):
        return ""
    return f"{100 * mean:.1f}%" + (f" ± {100 * std:.1f}" if pd.notna(std) else "")


CAPTION = (
    "val: mean best validation accuracy over the experiment's seeds (train.seeds), test: mean test "
    "accuracy of those runs; ± the seeds' standard deviation, where it ran more than one."
)


def markdown(table: SweepTable) -> str:
    """The table in Markdown (values as given, cells unpadded: `convlab.markdown`), accuracies in
    percent with ± the seeds' std where there were several, then what it held fixed and left out."""
    frame = table.frame
    accuracies = [c for c in frame if c.endswith(tuple(f" {a.kind}" for a in ACCURACIES))]
    shown = frame.drop(columns=[f"{c} std" for c in accuracies]).astype(object)
    for c in accuracies:
        shown[c] = [_percent(mean, std) for mean, std in zip(frame[c], frame[f"{c} std"], strict=True)]
    text = markdown_table(shown.where(shown.notna(), "")) + "\n"
    return text + "\n" + "\n".join([CAPTION, *table.notes]) + "\n"


def draw(ax: Any, table: SweepTable) -> None:
    """Accuracy against param on ax: a marker per experiment with the seeds' std as error bars, and
    for numeric values a line through the mean of each value. Joining the markers themselves would
    draw a vertical stroke wherever a value was run twice; the mean line reads as the trend and
    keeps every run visible, and where no value repeats it passes through every marker. Values that
    are not numbers get markers only: a line between unordered labels would suggest a trend."""
    param, by = table.param, table.by
    values = table.frame[param]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    labels = sorted(set(values), key=str)
    frame = table.frame.assign(x=values if numeric else values.map(labels.index))
    groups = frame.groupby(list(by), sort=False, dropna=False) if by else [((), frame)]
    for group, rows in groups:
        where = ", ".join(f"{key.split('.')[-1]}={v}" for key, v in zip(by, group, strict=True))
        for variant in table.variants:
            for accuracy, marker in zip(ACCURACIES, ("o", "s"), strict=True):
                name = f"{variant} {accuracy.kind}"
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
                    label=f"{variant} {'best validation' if accuracy.kind == 'val' else 'test'}"
                    + (f" ({where})" if by else ""),
                )
                if numeric:
                    means = points.groupby("x")[name].mean()
                    ax.plot(means.index, means.to_numpy(), color=bars.lines[0].get_color())
    if not numeric:
        ax.set_xticks(range(len(labels)), [str(v) for v in labels])
    ax.set_xlabel(param)
    ax.set_ylabel("accuracy")
    fixed = [n for n in table.notes if n.startswith("Held fixed: ")]
    ax.set_title(f"accuracy against {param}" + (f"\n{fixed[0]}" if fixed else ""), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot(table: SweepTable, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    draw(ax, table)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


# --- the command -----------------------------------------------------------------------------------


def exp_show(rev: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", "--rev", rev], capture_output=True, text=True
    )
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        said = next((line for line in lines if line.startswith("ERROR")), lines[0] if lines else "")
        raise SweepError(f"dvc exp show --rev {rev} failed: {said or f'exit {result.returncode}'}")
    return json.loads(result.stdout)


def read_shown(path: Path) -> Any:
    """Saved `dvc exp show --json` output: a list, refused in one line if it is anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(f"--json {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SweepError(f"--json {path}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    try:
        shown = json.loads(text)
    except ValueError as err:
        raise SweepError(f"--json {path}: not JSON ({err})") from None
    if not isinstance(shown, list):
        raise SweepError(
            f"--json {path}: a JSON {type(shown).__name__}, not the list `dvc exp show --json` prints"
        )
    return shown


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    args = parser.parse_args(argv)
    shown = read_shown(args.json) if args.json else exp_show(args.rev)
    try:
        table = sweep_table(shown, args.param, args.by, args.exp)
    except ShapeError as err:
        source = f"--json {args.json}" if args.json else f"dvc exp show --rev {args.rev}"
        raise SweepError(f"{source}: not `dvc exp show --json` output: {err}") from None
    # A mistyped name would silently drop its row from a comparison the user chose row by row.
    if missing := [name for name in args.exp if name not in set(table.frame["experiment"])]:
        raise SweepError(f"no finished experiment {', '.join(missing)} with a value for {args.param!r}")
    if table.frame.empty:  # --exp named only rows without the param
        raise SweepError(f"no finished experiment has {args.param}; is the name as in params.yaml?")
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(table)
    (args.out / f"{args.param}.md").write_text(text)
    plot(table, args.out / f"{args.param}.png")
    print(text, end="")
    print(f"sweep: wrote {args.out / (args.param + '.md')} and {args.out / (args.param + '.png')}")


if __name__ == "__main__":
    run_stage("sweep", main)
