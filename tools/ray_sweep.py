"""A sweep of DVC experiments on Ray: each experiment one Ray task, which runs
tools/run_experiment.py (a fresh clone of the pushed commit, `dvc exp run --pull`, the pushes, the
clean-up) on a node of a local Ray instance or of a cluster. At the end the sweep's experiments are
pulled (`dvc exp pull`) and tabled. See docs/ray.md.

    python tools/ray_sweep.py -S 'dropout.fc=0.1,0.3,0.5' -S 'seed=0,1' --name fc
    python tools/ray_sweep.py --address HEAD:6379 -S 'dropout.fc=0.1,0.3' --gpus-per-run 0.25

The grid is the one `dvc exp run --queue` would queue (DVC's own expansion of -S), of at most
MAX_EXPERIMENTS, counted before it is expanded. An experiment is named NAME-<8 hex digits of its
params>, so the same point of the same commit always has the same name: the same command again
runs only what is not on the git remote yet. The driver gives each task its git identity, so the
experiments are committed as whoever started the sweep. Ray's own messages (a lost node's logs, its
retries) go to WORK/ray_sweep.log, not between the sweep's lines. The study never imports Ray.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from run_experiment import (
    checked_name,
    committed_dvc_remote,
    default_work_dir,
    experiment_ref,
    headline_metrics,
    identity,
    last_line,
    remote_refs,
    remove_stale,
    source,
)

from convlab.errors import ConvlabError, run_main
from convlab.report import markdown_table

PARAMS_FILE = "params.yaml"  # DVC's default params file: what -S without a file name changes
MAX_EXPERIMENTS = 1000  # each a clone, a run and a ref on the git remote: more is a mistyped range
RETRIES = 3  # times Ray runs a task again whose worker or node was lost
TAIL = 15  # lines of a failed experiment's output shown
LOCAL_OBJECT_STORE = 100 * 2**20  # only the tasks' small results pass through it


def grid(set_params: list[str]) -> tuple[list[list[str]], list[str]]:
    """The -S values of each experiment, expanded by DVC's code as `dvc exp run --queue` does, and
    the params that vary (else the first one); ConvlabError for a bad -S or a grid too large."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps, to_hydra_overrides
    from hydra.errors import HydraException

    def in_file(path: str, text: str) -> str:
        return text if path == PARAMS_FILE else f"{path}:{text}"

    try:
        by_file = to_path_overrides(set_params)
        parsed = [(path, o) for path, texts in by_file.items() for o in to_hydra_overrides(texts)]
        size = 1
        for _, override in parsed:  # counted lazily: range(0,1000000) twice is not expanded
            values = override.sweep_iterator() if override.is_sweep_override() else [None]
            size *= sum(1 for _ in itertools.islice(values, MAX_EXPERIMENTS + 1))
            if size > MAX_EXPERIMENTS:
                raise ConvlabError(
                    f"the grid has more than {MAX_EXPERIMENTS} experiments, the most a sweep runs: "
                    "split it into several sweeps"
                )
        combinations = get_hydra_sweeps(by_file)
    except (InvalidArgumentError, HydraException) as error:
        raise ConvlabError(f"bad -S value: {error}") from None
    keys = [in_file(path, o.key_or_group) for path, o in parsed]
    swept = [in_file(path, o.key_or_group) for path, o in parsed if o.is_sweep_override()]
    experiments = [[in_file(p, text) for p, texts in c.items() for text in texts] for c in combinations]
    return experiments, list(dict.fromkeys(swept or keys[:1]))


def experiment_name(prefix: str, params: list[str]) -> str:
    """Made from the params, whatever their order, so that a rerun finds the experiment."""
    return f"{prefix}-{hashlib.sha256(chr(10).join(sorted(params)).encode()).hexdigest()[:8]}"


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def checked_workspace(root: Path, git_remote: str, dvc_remote: str | None) -> tuple[str, str, str]:
    """(commit, git URL, DVC remote) for the tasks: a task gets only what the git remote holds, so
    the workspace must be committed and pushed, and the DVC remote committed."""
    if git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip():
        raise ConvlabError(
            "uncommitted changes would not reach the experiments: commit and push them, or stash them"
        )
    url, commit = source(git_remote, "HEAD")
    fetched = git(root, "fetch", "-q", git_remote)
    if fetched.returncode != 0:
        raise ConvlabError(f"git fetch {git_remote} failed: {last_line(fetched.stderr)}")
    if not git(root, "branch", "-r", "--contains", commit, "--list", f"{git_remote}/*").stdout.strip():
        raise ConvlabError(
            f"commit {commit[:7]} is not on {git_remote}, which the tasks clone: git push {git_remote} HEAD"
        )
    return commit, url, committed_dvc_remote(root, dvc_remote)


@contextlib.contextmanager
def ray_output_to(log: Path) -> Iterator[IO[str]]:
    """Ray's messages to log, for as long as Ray runs: its driver prints what the cluster reports (a
    lost raylet's last 20 log lines, each retry) on stdout, and its client repeats each refused
    connection on stderr (file descriptor 2). Yields the real stdout, for the sweep's own lines."""
    real = sys.stdout
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield real
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def connect(address: str | None, log: Path) -> None:
    """Start a local Ray instance (address None) or join the cluster at address; one line if not."""
    import ray
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    try:
        if address is None:
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     object_store_memory=LOCAL_OBJECT_STORE)  # fmt: skip
            return
        # What ray.init does for a cluster it finds on this machine, and not for an address: send
        # the token (RAY_AUTH_TOKEN, or ~/.ray/auth_token) when there is one.
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except Exception as error:  # a local node that does not start in time is a bare Exception
        said = log.read_text()
        if address is None:
            raise ConvlabError(f"the local Ray instance did not start: {last_line(str(error))}") from None
        if "InvalidAuthToken" in said or isinstance(error, ray.exceptions.AuthenticationError):
            raise ConvlabError(
                f"the Ray cluster at {address} wants its token: RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                "(or the head node's ~/.ray/auth_token) here, as on every node"
            ) from None
        raise ConvlabError(f"cannot reach the Ray cluster at {address}: {last_line(str(error))}") from None


def experiment_task(script: str, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """On a node: tools/run_experiment.py, sent as text (a node has the study's Python environment,
    not its checkout), and its JSON line. A cancelled task gets KeyboardInterrupt between bytecodes,
    so wait a second at a time; then end the run, which ends its steps and removes its clone."""
    import json

    with subprocess.Popen(
        [sys.executable, "-", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **env}, text=True,
    ) as run:  # fmt: skip
        given: str | None = script
        try:
            while True:
                try:
                    out, err = run.communicate(given, timeout=1)
                    break
                except subprocess.TimeoutExpired:
                    given = None  # being sent
        except BaseException:
            run.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.communicate(timeout=30)
            raise
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):  # it died before it could say
        return {
            "state": "failed",
            "error": f"exited {run.returncode}",
            "log": "\n".join(err.splitlines()[-TAIL:]),
        }


def run_on_ray(
    args: argparse.Namespace,
    todo: dict[str, list[str]],
    common: list[str],
    who: tuple[str, str],
    out: IO[str],
) -> dict[str, dict[str, Any]]:
    """Each experiment of todo as a Ray task; {name: its JSON result}, with a line for each as it ends."""
    import ray

    have = ray.cluster_resources()
    # A task that asks for more than any node has waits for ever. A cluster may grow to fit it (an
    # autoscaler); a local instance cannot.
    if args.address is None and (
        args.cpus_per_run > have.get("CPU", 0) or args.gpus_per_run > have.get("GPU", 0)
    ):
        cpus, gpus = have.get("CPU", 0), have.get("GPU", 0)
        raise ConvlabError(f"this machine has {cpus:g} CPUs and {gpus:g} GPUs, too few for one run")
    user, email = who
    env = {"GIT_AUTHOR_NAME": user, "GIT_COMMITTER_NAME": user, "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_EMAIL": email, "OMP_NUM_THREADS": str(max(1, int(args.cpus_per_run)))}  # fmt: skip
    script = (Path(__file__).parent / "run_experiment.py").read_text()
    task = ray.remote(experiment_task).options(
        num_cpus=args.cpus_per_run, num_gpus=args.gpus_per_run, max_retries=RETRIES
    )
    pending = {
        task.remote(script, ["--name", name, *(f"--set-param={p}" for p in params), *common], env): name
        for name, params in todo.items()
    }
    results: dict[str, dict[str, Any]] = {}
    try:
        while pending:
            [ready], _ = ray.wait(list(pending))
            name = pending.pop(ready)
            try:
                result = ray.get(ready)
            except ray.exceptions.RayError as error:  # lost more than RETRIES times
                result = {"state": "failed", "error": last_line(str(error)), "log": ""}
            results[name] = result
            line = f"[{len(results)}/{len(todo)}] {name}  {result['state']}  {result.get('seconds', 0):.0f} s"
            print(f"{line}  {' '.join(todo[name])}", file=out, flush=True)
            if result["state"] == "failed":
                print(
                    "    " + "\n    ".join([result["error"], *result["log"].splitlines()]),
                    file=out,
                    flush=True,
                )
    except KeyboardInterrupt:
        for ref in pending:  # each ends its run, which ends its steps and removes its clone
            ray.cancel(ref)
        ray.wait(list(pending), num_returns=len(pending), timeout=30)
        raise
    return results


def pull_and_table(
    root: Path, args: argparse.Namespace, remote: str, url: str, commit: str, grid_: dict[str, list[str]],
    swept: list[str],
) -> None:  # fmt: skip
    """`dvc exp pull` the sweep's experiments that are on the git remote and print their headline
    metrics (tools/sweep.py tables the study's, with each variant's spread over seeds)."""
    there = remote_refs(url, experiment_ref(commit, "*"))
    landed = {
        name: there[experiment_ref(commit, name)] for name in grid_ if experiment_ref(commit, name) in there
    }
    if not landed:
        return
    pull = [sys.executable, "-m", "dvc", "exp", "pull", args.git_remote, *landed, "-r", remote]
    pulled = subprocess.run(pull, cwd=root, capture_output=True, text=True)
    if pulled.returncode != 0:
        raise ConvlabError(f"dvc exp pull failed: {last_line(pulled.stdout + pulled.stderr)}")
    metrics = headline_metrics(root, list(landed.values()))
    rows = []
    for name, exp in landed.items():
        values = dict(p.split("=", 1) for p in grid_[name])
        rows.append({"experiment": name} | {key: values[key] for key in swept} | metrics.get(exp, {}))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print("\n".join(markdown_table([{key: row.get(key, "") for key in columns} for row in rows])))


def amount(text: str) -> float:
    if not float(text) >= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of 0 or more")
    return float(text)


def main(argv: list[str]) -> None:
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
    parser.add_argument(
        "--address", default=os.environ.get("RAY_ADDRESS"),
        help="a Ray cluster's address (default: RAY_ADDRESS, which a Ray job has; else a local Ray instance)",
    )  # fmt: skip
    parser.add_argument("--cpus-per-run", type=amount, default=1.0, help="CPUs, and threads, of a run")
    parser.add_argument("--gpus-per-run", type=amount, default=0.0, help="GPUs of a run; 0.25: four a GPU")
    parser.add_argument(
        "--work-dir", type=Path, help="each node's clones and DVC cache (run_experiment's default)"
    )
    args = parser.parse_args(argv)
    if args.cpus_per_run == 0:
        raise ConvlabError("--cpus-per-run must be above 0")
    if args.gpus_per_run > 1 and not args.gpus_per_run.is_integer():
        raise ConvlabError("--gpus-per-run above 1 must be a whole number (Ray shares a GPU, not several)")
    experiments, swept = grid(args.set_params)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConvlabError('Ray is not installed: pip install -e ".[ray]"') from None
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        root = Path(Repo.find_root())
    except NotDvcRepoError:
        raise ConvlabError("not in a DVC project") from None
    names = {checked_name(root, experiment_name(args.name, params)): params for params in experiments}
    commit, url, remote = checked_workspace(root, args.git_remote, args.dvc_remote)
    who = identity(root)  # the driver's: every node commits as whoever started the sweep
    there = remote_refs(url, experiment_ref(commit, "*"))
    todo = {name: params for name, params in names.items() if experiment_ref(commit, name) not in there}
    already = f"{len(names) - len(todo)} on {args.git_remote} already"
    print(f"ray_sweep: {len(names)} experiment(s) of {commit[:7]}, {already}", flush=True)
    work = args.work_dir.resolve() if args.work_dir else default_work_dir()
    remove_stale(work / "clones")  # this node's; each task removes its own node's
    common = ["--git-remote", url, "--rev", commit, "--dvc-remote", remote]
    common += ["--work-dir", str(work)] if args.work_dir else []
    results: dict[str, dict[str, Any]] = {}
    if todo:
        import ray

        log = work / "ray_sweep.log"
        with ray_output_to(log) as out:
            try:
                connect(args.address, log)
                results = run_on_ray(args, todo, common, who, out)
            finally:
                ray.shutdown()
    pull_and_table(root, args, remote, url, commit, names, swept)
    if failed := [name for name, result in results.items() if result["state"] == "failed"]:
        what = f"{len(failed)} of {len(names)} experiments failed ({', '.join(failed)})"
        raise ConvlabError(f"{what}; the rest are on {args.git_remote}")


if __name__ == "__main__":
    run_main("ray_sweep", main)
