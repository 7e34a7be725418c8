"""Run a sweep of DVC experiments on Ray: one `dvc exp run` per experiment, each in its own clone of
the pushed commit, on this machine or on a Ray cluster; each experiment is pushed when it finishes,
and at the end the sweep is pulled and tabled.

    python tools/ray_sweep.py -S 'dropout.fc=0.1,0.3,0.5' -S 'seed=0,1' --name fc
    RAY_ADDRESS=auto python tools/ray_sweep.py -S 'dropout.fc=0.1,0.3' --gpus-per-run 0.25  # a cluster's node

The grid is the one `dvc exp run --queue` would queue (DVC's own expansion of -S). An experiment
is named NAME-<8 hex digits of its params>, so the same point of the same commit always has the same
name: the same command again skips what is on the git remote already, and a stopped or partly
failed sweep resumes. Each Ray task clones the commit, runs `dvc exp run --pull --allow-missing`,
pushes the experiment (`dvc exp push`) and the run cache with the files it names
(tools/share_runs.py), and returns the experiment's metrics (metrics/*.json, flattened).

Why Ray: DVC's queue runs on one machine by design and DVC dropped its remote executors. Ray is a
maintained engine that places tasks by CPUs and GPUs (fractions of one included), retries the tasks
of a lost worker or node, and runs the same program on a laptop (a local instance, started on
demand) and on a cluster (RAY_ADDRESS or --address). So this file says only what one experiment is.
The study never imports Ray. See docs/ray.md.
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
from typing import Any, NoReturn, TypedDict

PARAMS_FILE = "params.yaml"  # DVC's default params file: what -S without a file name changes
RETRIES = 3  # times Ray runs a task again whose worker or node was lost
TAIL = 15  # lines of a failed experiment's output shown


class Outcome(TypedDict):
    name: str
    params: list[str]
    state: str  # "landed" (run and pushed), "on remote" (a retry found it pushed), "failed"
    seconds: float
    metrics: dict[str, Any]
    log: str  # a failed step's last lines


class Failed(Exception):
    pass


def fail(message: str) -> NoReturn:
    sys.exit(f"ray_sweep: error: {message}")


def grid(set_params: list[str]) -> tuple[list[list[str]], list[str]]:
    """The -S values of each experiment, expanded by DVC's code as `dvc exp run --queue` does, and
    the params of the table: the swept ones (given several values), else the first one."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps, to_hydra_overrides
    from hydra.errors import HydraException

    def in_file(path: str, text: str) -> str:
        return text if path == PARAMS_FILE else f"{path}:{text}"

    try:
        by_file = to_path_overrides(set_params)
        parsed = [(path, o) for path, texts in by_file.items() for o in to_hydra_overrides(texts)]
        combinations = get_hydra_sweeps(by_file)
    except (InvalidArgumentError, HydraException) as error:
        fail(f"bad -S value: {error}")
    keys = [in_file(path, o.key_or_group) for path, o in parsed]
    swept = [in_file(path, o.key_or_group) for path, o in parsed if o.is_sweep_override()]
    experiments = [[in_file(p, text) for p, texts in c.items() for text in texts] for c in combinations]
    return experiments, list(dict.fromkeys(swept or keys[:1]))


def experiment_name(prefix: str, params: list[str]) -> str:
    """Made from the params, whatever their order, so that a rerun finds the experiment."""
    return f"{prefix}-{hashlib.sha256(chr(10).join(sorted(params)).encode()).hexdigest()[:8]}"


def remote_experiments(url: str, base: str) -> set[str]:
    """Names of the experiments of commit base on the git remote (refs/exps/ab/cdef.../NAME)."""
    listed = subprocess.run(["git", "ls-remote", url, "refs/exps/*"], capture_output=True, text=True)
    if listed.returncode != 0:
        raise Failed(f"git ls-remote {url} failed: {listed.stderr.strip()}")
    prefix = f"refs/exps/{base[:2]}/{base[2:]}/"
    refs = [line.split("\t")[-1] for line in listed.stdout.splitlines()]
    return {ref.removeprefix(prefix) for ref in refs if ref.startswith(prefix)}


def metrics_of(root: Path) -> dict[str, Any]:
    """Every value in metrics/*.json, named as dvc exp show names it ("metrics/test.json:a.b"): all
    of them, since which ones are the headline is the study's business."""
    found: dict[str, Any] = {}

    def walk(name: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{name}{key}" if name.endswith(":") else f"{name}.{key}", inner)
        else:
            found[name] = value

    for path in sorted((root / "metrics").glob("*.json")):
        walk(f"metrics/{path.name}:", json.loads(path.read_text()))
    return found


def with_src(root: Path, env: dict[str, str]) -> dict[str, str]:
    """env in which the checkout at root runs its own src/convlab, not an installed one: convlab is
    a namespace package, so the first src on the path wins."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), env.get("PYTHONPATH")]))}


def run_step(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Exit status and output (stdout and stderr in order) of args. A cancelled task (Ctrl-C on the
    driver) gets KeyboardInterrupt at its next bytecode, so wait a second at a time, then end the
    step and all it started: the stage that dvc runs would otherwise train on, orphaned."""
    import psutil

    with subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as step:
        try:
            while True:
                try:
                    output = step.communicate(timeout=1)[0]
                except subprocess.TimeoutExpired:
                    continue
                return step.returncode, output
        except BaseException:
            for process in psutil.Process().children(recursive=True):
                process.kill()
            raise


def run_experiment(url: str, base: str, name: str, params: list[str], remote: str, cpus: float) -> Outcome:
    """One experiment, as a Ray task: clone the commit, run, push. It runs on a worker, which needs
    git, the study's Python environment and the remotes' credentials in its environment."""
    started = time.monotonic()

    def outcome(state: str, metrics: dict[str, Any] | None = None, log: str = "") -> Outcome:
        seconds = round(time.monotonic() - started, 1)
        return Outcome(name=name, params=params, state=state, seconds=seconds, metrics=metrics or {}, log=log)

    with tempfile.TemporaryDirectory(prefix=f"ray_sweep-{name}-") as tmp:
        clone = Path(tmp) / "repo"
        env = with_src(clone, dict(os.environ))
        # Ray leaves an inherited OMP_NUM_THREADS alone: set it to the task's CPUs, so that runs side
        # by side do not fight over cores. `python` in the stages' commands: this interpreter.
        env["OMP_NUM_THREADS"] = str(max(1, int(cpus)))
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        dvc = [sys.executable, "-m", "dvc"]
        sets = [f"-S{p}" for p in params]
        steps = {
            "git clone": ["git", "clone", "-q", "--no-checkout", url, "."],
            "git checkout": ["git", "checkout", "-q", base],
            "dvc remote default": [*dvc, "remote", "default", "--local", remote],  # for --pull and pushes
            "dvc exp run": [*dvc, "exp", "run", "--pull", "--allow-missing", "-n", name, *sets],
            "dvc exp push": [*dvc, "exp", "push", "origin", name],
            "tools/share_runs.py": [sys.executable, "tools/share_runs.py"],
        }
        try:
            # A retry of a task whose worker was lost after its push finds the experiment there.
            if name in remote_experiments(url, base):
                return outcome("on remote")
            clone.mkdir()
            for what, args in steps.items():
                code, output = run_step(args, clone, env)
                if code != 0:
                    raise Failed("\n".join([*output.splitlines()[-TAIL:], f"({what} exited {code})"]))
            # `dvc exp push` exits 0 without pushing when an experiment of that name is there.
            if name not in remote_experiments(url, base):
                raise Failed(f"dvc exp push left {name} off the git remote")
        except Failed as error:
            return outcome("failed", log=str(error))
        return outcome("landed", metrics_of(clone))


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1]


def checked_workspace(root: Path, git_remote: str, dvc_remote: str | None) -> tuple[str, str, str]:
    """(commit, git URL, DVC remote) for the workers, or a one-line error: a worker gets only what
    the git remote holds, so the commit must be pushed and the DVC remote committed."""
    if git(root, "status", "--porcelain").stdout.strip():
        fail("uncommitted changes would not reach the workers: commit and push them, or stash them")
    found = git(root, "remote", "get-url", git_remote)
    if found.returncode != 0:
        fail(f"no git remote {git_remote!r} (git remote -v lists them)")
    url = found.stdout.strip()
    if (root / url).exists():  # a path relative to here means nothing in the workers' clones
        url = str((root / url).resolve())
    base = git(root, "rev-parse", "HEAD").stdout.strip()
    fetched = git(root, "fetch", "-q", git_remote)
    if fetched.returncode != 0:
        fail(f"git fetch {git_remote} failed: {last_line(fetched.stderr)}")
    if not git(root, "branch", "-r", "--contains", base, "--list", f"{git_remote}/*").stdout.strip():
        fail(f"commit {base[:7]} is not on {git_remote}, which the workers clone: git push {git_remote} HEAD")

    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        committed = repo.config.load_one("repo")  # .dvc/config, all of DVC's config a clone gets
    remote = dvc_remote or committed["core"].get("remote")
    if not remote:
        fail("no default DVC remote in .dvc/config: commit one (dvc remote add -d) or pass --dvc-remote")
    if remote not in committed["remote"]:
        fail(f"DVC remote {remote!r} is not in the committed .dvc/config, so the workers lack it")
    return base, url, remote


def run_on_ray(
    args: argparse.Namespace, url: str, base: str, remote: str, todo: dict[str, list[str]]
) -> list[Outcome]:
    """The experiments as Ray tasks, with a line for each as it finishes."""
    import ray
    from tqdm import tqdm

    connect = not ray.is_initialized()  # the tests start Ray themselves
    if connect:
        try:
            ray.init(address=args.address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, ValueError, RuntimeError) as error:
            fail(f"cannot reach the Ray cluster: {last_line(str(error))}")
    pending: dict[Any, tuple[str, list[str]]] = {}
    try:
        have = ray.cluster_resources()
        # A task that asks for more than any node has waits for ever. A cluster may grow to fit it
        # (an autoscaler); a local instance cannot.
        local = connect and not (args.address or os.environ.get("RAY_ADDRESS"))
        if local and (args.cpus_per_run > have.get("CPU", 0) or args.gpus_per_run > have.get("GPU", 0)):
            cpus, gpus = have.get("CPU", 0), have.get("GPU", 0)
            fail(f"this machine has {cpus:g} CPUs and {gpus:g} GPUs, too few for one run")
        task = ray.remote(run_experiment).options(
            num_cpus=args.cpus_per_run, num_gpus=args.gpus_per_run, max_retries=RETRIES
        )
        for name, params in todo.items():
            pending[task.remote(url, base, name, params, remote, args.cpus_per_run)] = (name, params)
        outcomes = []
        with tqdm(total=len(pending), unit="exp", file=sys.stderr) as bar:
            while pending:
                [ready], _ = ray.wait(list(pending))
                name, params = pending.pop(ready)
                try:
                    done = ray.get(ready)
                except ray.exceptions.RayError as error:  # lost more than RETRIES times
                    log = "\n".join(str(error).splitlines()[-TAIL:])
                    done = Outcome(name=name, params=params, state="failed", seconds=0, metrics={}, log=log)
                bar.write(f"{name}  {done['state']}  {done['seconds']:.0f} s  {' '.join(params)}")
                if done["state"] == "failed":
                    bar.write("    " + done["log"].replace("\n", "\n    "))
                bar.update()
                outcomes.append(done)
        return outcomes
    except KeyboardInterrupt:
        # Each task ends its step and what that started (run_step); ray.shutdown alone would leave
        # the stages running, orphaned, here and on a cluster.
        for ref in pending:
            ray.cancel(ref)
        if pending:
            ray.wait(list(pending), num_returns=len(pending), timeout=30)
        print("ray_sweep: stopped (Ctrl-C); run the same command to resume", file=sys.stderr)
        sys.exit(130)
    finally:
        if connect:
            ray.shutdown()


def pull_and_table(
    root: Path, args: argparse.Namespace, remote: str, names: list[str], swept: list[str]
) -> None:
    """`dvc exp pull` the sweep's experiments and print tools/sweep.py's table of exactly those."""
    env = with_src(root, dict(os.environ))
    pull = [sys.executable, "-m", "dvc", "exp", "pull", args.git_remote, *names, "-r", remote]
    pulled = subprocess.run(pull, cwd=root, env=env, capture_output=True, text=True)
    if pulled.returncode != 0:
        fail(f"dvc exp pull failed: {last_line(pulled.stdout + pulled.stderr)}")
    param, *by = swept
    table = [sys.executable, "tools/sweep.py", param, *(["--by", *by] if by else []), "--exp", *names]
    shown = subprocess.run(table, cwd=root, env=env, capture_output=True, text=True)
    print(shown.stdout, end="")
    if shown.returncode != 0:
        fail(f"tools/sweep.py failed: {last_line(shown.stderr)}")


def amount(text: str) -> float:
    if not float(text) >= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of 0 or more")
    return float(text)


def main(argv: list[str] | None = None) -> list[Outcome]:
    """Run the sweep; returns the outcome of each experiment run (none when all were there)."""
    parser = argparse.ArgumentParser(
        prog="ray_sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-S", "--set-param", dest="set_params", action="append", required=True,
        metavar="[FILE:]PARAM=VALUES", help="as dvc exp run --queue takes it: 'dropout.fc=0.1,0.3'",
    )  # fmt: skip
    parser.add_argument("-n", "--name", default="sweep", help="experiment names start NAME- (default: sweep)")
    parser.add_argument("--git-remote", default="origin", help="has the commit, gets the experiments")
    parser.add_argument("--dvc-remote", help="gets the outputs (default: the committed default remote)")
    parser.add_argument("--address", help="Ray cluster (default: RAY_ADDRESS, else a local Ray instance)")
    parser.add_argument("--cpus-per-run", type=amount, default=1.0, help="CPUs, and threads, of a run")
    parser.add_argument("--gpus-per-run", type=amount, default=0.0, help="GPUs of a run; 0.25: four a GPU")
    args = parser.parse_args(argv)
    if args.cpus_per_run == 0:
        fail("--cpus-per-run must be above 0")
    if args.gpus_per_run > 1 and not args.gpus_per_run.is_integer():
        fail("--gpus-per-run above 1 must be a whole number (Ray shares a GPU, not several)")
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
    if "/" in args.name or git(root, "check-ref-format", f"refs/exps/ab/cd/{names[0]}").returncode != 0:
        fail(f"--name {args.name!r} cannot be part of a git ref name")
    base, url, remote = checked_workspace(root, args.git_remote, args.dvc_remote)
    try:
        there = remote_experiments(url, base)
    except Failed as error:
        fail(str(error))
    todo = {name: params for name, params in zip(names, experiments, strict=True) if name not in there}
    there = len(names) - len(todo)
    print(f"ray_sweep: {len(names)} experiments of {base[:7]}, {there} on {args.git_remote} already")
    outcomes = run_on_ray(args, url, base, remote, todo) if todo else []
    failed = [o["name"] for o in outcomes if o["state"] == "failed"]
    if landed := [name for name in names if name not in failed]:
        pull_and_table(root, args, remote, landed, swept)
    if failed:
        what = f"{len(failed)} of {len(names)} experiments failed ({', '.join(failed)})"
        fail(f"{what}; the rest are on {args.git_remote}")
    return outcomes


if __name__ == "__main__":
    main()
