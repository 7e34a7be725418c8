"""Run a sweep of DVC experiments on Ray: one `dvc exp run` per experiment, each in its own clone of
the pushed commit, on this machine or on a Ray cluster; every experiment is pushed as it finishes,
and the sweep is pulled and tabled at the end.

    python tools/ray_sweep.py -S 'dropout.fc=0.1,0.3,0.5' -S 'seed=0,1' --name fc
    RAY_ADDRESS=ray://head:10001 python tools/ray_sweep.py -S 'dropout.fc=0.1,0.3' --gpus-per-run 0.25

The grid is `dvc exp run --queue`'s (DVC's own expansion of -S). Each experiment is named
<name>-<8 hex digits of its params>, so the same experiment of the same commit always has the same
name: run the command again and it skips what is already on the git remote, so a stopped or partly
failed sweep resumes. Each task clones the commit, runs `dvc exp run --pull --allow-missing`,
pushes the experiment (`dvc exp push`) and the run cache with its files (tools/share_runs.py), and
returns the experiment's metrics (metrics/*.json, flattened).

Why Ray: DVC's queue runs on one machine by design and DVC dropped remote executors. Ray is a
maintained engine that places tasks by CPUs and GPUs (fractions of a GPU included), retries the
tasks of a lost worker or node, and runs the same program on a laptop (a local instance started on
demand) and on a cluster (`RAY_ADDRESS` or --address). So this file says only what one experiment
is. The study itself never imports Ray; see docs/ray.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

PARAMS_FILE = "params.yaml"  # DVC's default params file: -S without a file name
RETRIES = 3  # Ray re-runs a task whose worker or node was lost, this many times
TAIL = 15  # lines of a failed experiment's output shown


class Outcome(TypedDict):
    name: str
    params: list[str]
    state: str  # "landed" (run and pushed), "on remote" (a retry found it pushed) or "failed"
    seconds: float
    metrics: dict[str, Any]
    log: str  # the last lines of a failed step's output


def fail(message: str) -> None:
    sys.exit(f"ray_sweep: error: {message}")


def grid(set_params: list[str]) -> tuple[list[list[str]], list[str]]:
    """The experiments of -S values, each as the -S values of one `dvc exp run`, and the swept
    params (those given several values), expanded by DVC's own code as `dvc exp run --queue` does."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps, to_hydra_overrides
    from hydra.errors import HydraException

    def in_file(path: str, text: str) -> str:
        return text if path == PARAMS_FILE else f"{path}:{text}"

    try:
        by_file = to_path_overrides(set_params)
        swept = [
            in_file(path, override.key_or_group)
            for path, texts in by_file.items()
            for override in to_hydra_overrides(texts)
            if override.is_sweep_override()
        ]
        combinations = get_hydra_sweeps(by_file)
    except (InvalidArgumentError, HydraException) as error:
        fail(f"bad -S value: {error}")
    experiments = [[in_file(p, t) for p, texts in c.items() for t in texts] for c in combinations]
    return experiments, list(dict.fromkeys(swept))


def experiment_name(prefix: str, params: list[str]) -> str:
    """The same params give the same name (whatever the order of -S), so a rerun finds them."""
    return f"{prefix}-{hashlib.sha256(chr(10).join(sorted(params)).encode()).hexdigest()[:8]}"


def remote_experiments(url: str, base: str) -> set[str]:
    """Names of the experiments of commit base on the git remote (refs/exps/ab/cdef.../NAME)."""
    listed = subprocess.run(["git", "ls-remote", url, "refs/exps/*"], capture_output=True, text=True)
    if listed.returncode != 0:
        raise RuntimeError(f"git ls-remote {url} failed: {listed.stderr.strip()}")
    prefix = f"refs/exps/{base[:2]}/{base[2:]}/"
    refs = (line.split("\t")[-1] for line in listed.stdout.splitlines())
    return {ref.removeprefix(prefix) for ref in refs if ref.startswith(prefix)}


def metrics_of(root: Path) -> dict[str, Any]:
    """Every value of metrics/*.json as {"metrics/FILE.json:key.subkey": value}, as dvc exp show
    names them; read as they are, since which metrics matter is the study's business."""
    found: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if not prefix.endswith(":") else f"{prefix}{key}", inner)
        else:
            found[prefix] = value

    for path in sorted((root / "metrics").glob("*.json")):
        walk(f"metrics/{path.name}:", json.loads(path.read_text()))
    return found


def with_src(root: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment in which the stages of the checkout at root import its own src/convlab (a
    namespace package, so the first on the path wins), not an installed copy of other code."""
    paths = [str(root / "src"), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


class StepFailed(Exception):
    pass


def run_experiment(url: str, base: str, name: str, params: list[str], remote: str, cpus: float) -> Outcome:
    """One experiment, as a Ray task: clone, run, push. Runs on a worker, so it needs only git, the
    Python environment of the study and the remotes' credentials in the environment."""
    started = time.monotonic()

    def outcome(state: str, metrics: dict[str, Any] | None = None, log: str = "") -> Outcome:
        seconds = round(time.monotonic() - started, 1)
        return Outcome(name=name, params=params, state=state, seconds=seconds, metrics=metrics or {}, log=log)

    # A retry of a task whose worker was lost after the push: the experiment is there already.
    if name in remote_experiments(url, base):
        return outcome("on remote")
    with tempfile.TemporaryDirectory(prefix=f"ray_sweep-{name}-") as tmp:
        clone = Path(tmp) / "repo"
        env = with_src(clone, dict(os.environ))
        # Threads to match the CPUs Ray gave the task, so runs side by side do not fight over
        # cores; and `python` in the stages' commands is this interpreter: the study's environment.
        env["OMP_NUM_THREADS"] = str(max(1, int(cpus)))
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])

        def step(what: str, *args: str, cwd: Path = clone) -> None:
            done = subprocess.run(
                args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            if done.returncode != 0:
                raise StepFailed(
                    "\n".join([*done.stdout.splitlines()[-TAIL:], f"({what} exited {done.returncode})"])
                )

        dvc = (sys.executable, "-m", "dvc")
        try:
            step("git clone", "git", "clone", "-q", "--no-checkout", url, str(clone), cwd=Path(tmp))
            step("git checkout", "git", "checkout", "-q", base)
            step("dvc remote default", *dvc, "remote", "default", "--local", remote)  # pulls and pushes
            step(
                "dvc exp run",
                *dvc,
                "exp",
                "run",
                "--pull",
                "--allow-missing",
                "-n",
                name,
                *(f"-S{p}" for p in params),
            )
            step("dvc exp push", *dvc, "exp", "push", "origin", name)
            step("tools/share_runs.py", sys.executable, "tools/share_runs.py")
        except StepFailed as error:
            return outcome("failed", log=str(error))
        # `dvc exp push` exits 0 without pushing when an experiment of that name is there already.
        if name not in remote_experiments(url, base):
            return outcome("failed", log=f"dvc exp push left {name} off the git remote")
        return outcome("landed", metrics_of(clone))


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1]


def checked_workspace(root: Path, git_remote: str, dvc_remote: str | None) -> tuple[str, str, str]:
    """(commit, git URL, DVC remote) the workers use, or a one-line error: the workers get only
    what the git remote has, so the commit must be pushed and the DVC remote committed."""
    if git(root, "status", "--porcelain").stdout.strip():
        fail("the workspace has uncommitted changes, which would not reach the workers; commit and push them")
    found = git(root, "remote", "get-url", git_remote)
    if found.returncode != 0:
        fail(f"no git remote {git_remote!r} (git remote -v lists them)")
    url = found.stdout.strip()
    if (root / url).exists():  # a path: the workers clone it from elsewhere
        url = str((root / url).resolve())
    base = git(root, "rev-parse", "HEAD").stdout.strip()
    fetched = git(root, "fetch", "-q", git_remote)
    if fetched.returncode != 0:
        fail(f"git fetch {git_remote} failed: {last_line(fetched.stderr)}")
    if not git(root, "branch", "-r", "--contains", base, "--list", f"{git_remote}/*").stdout.strip():
        fail(
            f"commit {base[:7]} is not on {git_remote}, where the workers clone it from: git push {git_remote} HEAD"
        )

    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        committed = repo.config.load_one("repo")  # .dvc/config: what a clone has
    remote = dvc_remote or committed["core"].get("remote")
    if not remote:
        fail(
            "no default DVC remote in .dvc/config for the workers to push to: commit one (dvc remote add -d) or pass --dvc-remote"
        )
    if remote not in committed["remote"]:
        fail(f"DVC remote {remote!r} is not in the committed .dvc/config, so the workers do not have it")
    return base, url, remote


def run_on_ray(
    args: argparse.Namespace, url: str, base: str, remote: str, todo: dict[str, list[str]]
) -> list[Outcome]:
    """Run the experiments as Ray tasks, a progress line for each as it finishes."""
    import ray
    from tqdm import tqdm

    connect = not ray.is_initialized()  # a caller (the tests) may have started Ray already
    if connect:
        try:
            ray.init(address=args.address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, ValueError, RuntimeError) as error:
            fail(f"cannot reach the Ray cluster: {last_line(str(error))}")
    try:
        local = connect and not (args.address or os.environ.get("RAY_ADDRESS"))
        have = ray.cluster_resources()
        # A task that asks for more than any node has waits forever; a cluster may scale up, this machine cannot.
        if local and (args.gpus_per_run > have.get("GPU", 0) or args.cpus_per_run > have.get("CPU", 0)):
            fail(
                f"this machine has {have.get('CPU', 0):g} CPUs and {have.get('GPU', 0):g} GPUs, fewer than one run asks for"
            )
        task = ray.remote(run_experiment).options(
            num_cpus=args.cpus_per_run, num_gpus=args.gpus_per_run, max_retries=RETRIES
        )
        pending = {
            task.remote(url, base, name, params, remote, args.cpus_per_run): (name, params)
            for name, params in todo.items()
        }
        outcomes = []
        with tqdm(total=len(pending), unit="exp", file=sys.stderr) as bar:
            while pending:
                [ready], _ = ray.wait(list(pending), num_returns=1)
                name, params = pending.pop(ready)
                try:
                    done = ray.get(ready)
                except ray.exceptions.RayError as error:  # lost more often than RETRIES, or our bug
                    tail = "\n".join(str(error).splitlines()[-TAIL:])
                    done = Outcome(
                        name=name, params=params, state="failed", seconds=0.0, metrics={}, log=tail
                    )
                bar.write(f"{done['name']}  {done['state']}  {done['seconds']:.0f} s  {' '.join(params)}")
                if done["state"] == "failed":
                    bar.write("    " + done["log"].replace("\n", "\n    "))
                bar.update()
                outcomes.append(done)
        return outcomes
    except KeyboardInterrupt:
        print("ray_sweep: stopped (Ctrl-C); run the same command to resume", file=sys.stderr)
        sys.exit(130)
    finally:
        if connect:
            ray.shutdown()


def pull_and_table(
    root: Path, args: argparse.Namespace, remote: str, names: list[str], swept: list[str]
) -> None:
    """`dvc exp pull` the sweep's experiments and print tools/sweep.py's table of exactly them."""
    env = with_src(root, dict(os.environ))
    pulled = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "pull", args.git_remote, *names, "-r", remote],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if pulled.returncode != 0:
        fail(f"dvc exp pull failed: {last_line(pulled.stdout + pulled.stderr)}")
    param, *by = swept
    table = subprocess.run(
        [sys.executable, "tools/sweep.py", param, *(["--by", *by] if by else []), "--exp", *names],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    print(table.stdout, end="")
    if table.returncode != 0:
        fail(f"tools/sweep.py failed: {last_line(table.stderr)}")


def positive(text: str) -> float:
    if float(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return float(text)


def main(argv: list[str] | None = None) -> list[Outcome]:
    """Run the sweep; returns the outcome of each experiment it ran (none: all were on the remote)."""
    parser = argparse.ArgumentParser(
        prog="ray_sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-S",
        "--set-param",
        dest="set_params",
        action="append",
        required=True,
        metavar="[FILE:]PARAM=VALUES",
        help="as dvc exp run --queue takes it, e.g. 'dropout.fc=0.1,0.3'",
    )
    parser.add_argument(
        "-n", "--name", default="sweep", help="the experiments' names begin NAME- (default: sweep)"
    )
    parser.add_argument("--git-remote", default="origin", help="where the commit is and the experiments go")
    parser.add_argument("--dvc-remote", help="DVC remote of the outputs (default: the committed default)")
    parser.add_argument("--address", help="Ray cluster (default: RAY_ADDRESS, else a local Ray instance)")
    parser.add_argument("--cpus-per-run", type=positive, default=1.0, help="CPUs (and threads) per run")
    parser.add_argument(
        "--gpus-per-run", type=float, default=0.0, help="GPUs per run; 0.25: four runs a card"
    )
    args = parser.parse_args(argv)
    try:
        import ray  # noqa: F401
    except ImportError:
        fail('Ray is not installed: pip install -e ".[ray]"')

    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        root = Path(Repo.find_root())
    except NotDvcRepoError:
        fail("not in a DVC project")
    experiments, swept = grid(args.set_params)
    names = [experiment_name(args.name, params) for params in experiments]
    if git(root, "check-ref-format", f"refs/exps/ab/cd/{names[0]}").returncode != 0 or "/" in args.name:
        fail(f"--name {args.name!r} cannot be part of a git ref name")
    base, url, remote = checked_workspace(root, args.git_remote, args.dvc_remote)
    there = remote_experiments(url, base)
    todo = {name: params for name, params in zip(names, experiments, strict=True) if name not in there}
    print(
        f"ray_sweep: {len(names)} experiments of {base[:7]}, {len(names) - len(todo)} already on {args.git_remote}"
    )
    outcomes = run_on_ray(args, url, base, remote, todo) if todo else []
    failed = [o["name"] for o in outcomes if o["state"] == "failed"]
    landed = [name for name in names if name not in failed]
    if landed:
        pull_and_table(root, args, remote, landed, swept)
    if failed:
        fail(
            f"{len(failed)} of {len(names)} experiments failed ({', '.join(failed)}); the rest are on {args.git_remote}"
        )
    return outcomes


if __name__ == "__main__":
    main()
