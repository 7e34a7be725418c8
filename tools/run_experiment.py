"""One DVC experiment as a command, for any engine that runs commands: Ray (tools/ray_sweep.py), a
Slurm array, a CI matrix, a shell loop. See docs/ray.md.

    python tools/run_experiment.py -n fc-0.3 -S dropout.fc=0.3 [-S ...] [--git-remote origin] [--rev HEAD]

It clones the pushed commit into a folder of its own, runs `dvc exp run --pull --allow-missing -n
NAME -S ...` there, pushes the experiment (`dvc exp push`) and the run cache with the files its
records name (tools/share_runs.py), removes the clone, and prints one JSON line: name, state
("landed", "there" or "failed"), seconds, params and the headline metrics (what `dvc metrics show`
shows). Exit status 0 when the experiment is on the git remote, 1 when it is not.

Landed means that the git remote's ref of the experiment is this run's commit: `dvc exp push`
exits 0 without pushing when the remote has an experiment of that name already. The command is
idempotent: an experiment NAME of the commit already on the git remote is not run again ("there"),
so an engine may run it again after a lost node, and a resubmitted array runs only what is missing.

Each node keeps one DVC cache for its experiments (WORK/dvc-cache; WORK is --work-dir, by default
$XDG_CACHE_HOME/convlab/experiments): the data an experiment pulls are pulled once per node, and
its clones hardlink them. Nothing writes through such a link into the cache: DVC deletes a stage's
outputs before it runs, and every stage of the study writes a new file and renames it over its
output. A clone whose run was killed is removed by the next run on the node: each run holds a lock
on its folder while it lives, so the folders nobody holds are stale.

The experiment is committed as whoever runs the command (`git var GIT_COMMITTER_IDENT` here: the
checkout's git identity, or GIT_COMMITTER_NAME and GIT_COMMITTER_EMAIL).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from convlab.errors import ConvlabError, run_main

TAIL = 15  # lines of a failed step's output shown
LINKS = "reflink,hardlink,copy"  # safe for outputs that are replaced, never written in place (above)
STALE_UNLOCKED_S = 60  # a clone folder with no lock yet is being made, unless it is this old


class ExperimentFailed(ConvlabError):
    """The experiment did not land: the message says which step failed or why, log is that step's
    output's last lines."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


def default_work_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convlab" / "experiments"


def checked_point(set_params: list[str]) -> list[str]:
    """The -S values, parsed as `dvc exp run` parses them; a sweep (several values) is refused:
    one command runs one experiment."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import to_hydra_overrides
    from hydra.errors import HydraException

    try:
        for texts in to_path_overrides(set_params).values():
            for override in to_hydra_overrides(texts):
                if override.is_sweep_override():
                    raise ConvlabError(
                        f"-S {override.input_line} is a sweep: one experiment takes one value of each param "
                        "(tools/ray_sweep.py runs a grid)"
                    )
    except (InvalidArgumentError, HydraException) as error:
        raise ConvlabError(f"bad -S value: {error}") from None
    return set_params


def checked_name(repo: Path, name: str) -> str:
    """name, if DVC takes it as an experiment's name (its git ref rules, no "/"), and DVC's command
    line can pass it (it does not start with "-", which would read as an option)."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.repo.experiments.refs import ExpRefInfo
    from dvc.repo.experiments.utils import check_ref_format
    from scmrepo.git import Git

    if name.startswith("-"):
        raise ConvlabError(
            f"experiment name {name!r} starts with '-', which DVC's commands read as an option"
        )
    try:
        check_ref_format(Git(str(repo)), ExpRefInfo("0" * 40, name))
    except InvalidArgumentError as error:
        raise ConvlabError(str(error)) from None
    return name


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No prompt for credentials: a command run by an engine has nobody to answer it, and would hang.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1]


def source(git_remote: str, rev: str) -> tuple[str, str]:
    """(URL, commit): a remote of the checkout here, or a URL; a commit of the checkout here, or a
    full hash (which needs no checkout, as on an engine's node)."""
    here = Path.cwd()
    top = git(here, "rev-parse", "--show-toplevel")
    root = Path(top.stdout.strip()) if top.returncode == 0 else None
    url, base = git_remote, here
    if root is not None and (found := git(root, "remote", "get-url", git_remote)).returncode == 0:
        url, base = found.stdout.strip(), root
    if (base / url).exists():  # a folder: absolute, as the clone is made elsewhere
        url = str((base / url).resolve())
    elif re.fullmatch(r"[\w.-]+", url):
        raise ConvlabError(f"no git remote {url!r} here: run this in a clone, or give the remote's URL")
    if re.fullmatch(r"[0-9a-f]{40}", rev):
        return url, rev
    if root is None:
        raise ConvlabError(f"--rev {rev} needs a git checkout here to resolve it; give a commit's full hash")
    found = git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if found.returncode != 0:
        raise ConvlabError(f"--rev {rev} is not a commit of {root}")
    return url, found.stdout.strip()


def remote_refs(url: str, pattern: str) -> dict[str, str]:
    """{ref: commit} of the git remote's refs that match pattern (`git ls-remote`)."""
    listed = git(Path.cwd(), "ls-remote", url, pattern)
    if listed.returncode != 0:
        raise ConvlabError(f"cannot list the refs of the git remote {url}: {last_line(listed.stderr)}")
    return {ref: commit for commit, ref in (line.split("\t") for line in listed.stdout.splitlines())}


def experiment_ref(commit: str, name: str) -> str:
    """The ref DVC keeps an experiment of commit under (refs/exps/ab/cdef.../NAME)."""
    from dvc.repo.experiments.refs import ExpRefInfo

    return str(ExpRefInfo(commit, name))


def committed_dvc_remote(repo: Path, name: str | None) -> str:
    """The DVC remote a clone of repo pushes to: name, or the default; it must be in the committed
    .dvc/config (a clone has no other), or `dvc exp push` would push the git part alone."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        committed = dvc_repo.config.load_one("repo")
    remote = name or committed["core"].get("remote")
    if not remote:
        raise ConvlabError(
            "no default DVC remote in .dvc/config: commit one (dvc remote add -d), or name one"
        )
    if remote not in committed["remote"]:
        raise ConvlabError(f"DVC remote {remote!r} is not in the committed .dvc/config, so a clone lacks it")
    return remote


def identity(cwd: Path) -> tuple[str, str]:
    """(name, email) that git commits as here: the checkout's or the user's config, or GIT_COMMITTER_*."""
    found = git(cwd, "var", "GIT_COMMITTER_IDENT")
    match = re.fullmatch(r"(.*) <(.*)> \d+ [+-]\d{4}", found.stdout.strip())
    if found.returncode != 0 or not match:
        raise ConvlabError(
            "git has no identity to commit the experiment as: git config --global user.email ..."
        )
    return match[1], match[2]


def remove_stale(clones: Path) -> None:
    """Remove the clone folders that no living run holds: runs that were killed left them."""
    for folder in sorted(clones.glob("*")) if clones.is_dir() else []:
        try:
            lock = os.open(folder / "lock", os.O_RDWR)
        except FileNotFoundError:  # gone (another run removed it), or not locked yet: unless it is old
            with contextlib.suppress(FileNotFoundError):
                if time.time() - folder.stat().st_mtime > STALE_UNLOCKED_S:
                    shutil.rmtree(folder, ignore_errors=True)
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a living run's
            os.close(lock)
            continue
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)


def claim(clones: Path, name: str) -> tuple[Path, int]:
    """A new folder for this run's clone, and the lock that marks it as a living run's (the kernel
    drops it when this process ends, however it ends)."""
    clones.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=clones))
    lock = os.open(folder / "lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    return folder, lock


def step(what: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run one step of the experiment; ExperimentFailed, with its output's last lines, if it fails."""
    import psutil

    with subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as run:
        try:
            output = run.communicate()[0]
        except BaseException:  # Ctrl-C or SIGTERM: end what the step started, or a stage trains on, orphaned
            for process in psutil.Process().children(recursive=True):
                process.kill()
            raise
    if run.returncode != 0:
        lines = output.rstrip().splitlines()
        said = next((line for line in reversed(lines) if line.startswith("ERROR")), last_line(output))
        raise ExperimentFailed(f"{what} exited {run.returncode}: {said}", "\n".join(lines[-TAIL:]))


def headline_metrics(repo: Path, revs: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """{rev: {"dropout.val": 0.71, ...}}: the metrics the project declares, as `dvc metrics show`
    shows them, of each of revs (None: of the workspace, as rev "")."""
    from dvc.repo import Repo
    from dvc.utils.flatten import flatten

    with Repo(str(repo)) as dvc_repo:
        shown = dvc_repo.metrics.show(revs=revs)
    found: dict[str, dict[str, Any]] = {}
    for rev, files in shown.items():
        for metrics in files.get("data", {}).values():
            found.setdefault(rev, {}).update(flatten(metrics.get("data", {})))
    return found


def run_in(
    clone: Path, url: str, commit: str, name: str, params: list[str], remote: str | None, cache: Path
) -> None:
    """Clone commit into clone, run the experiment there and push it; ExperimentFailed if it does not
    land."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    # `python` in the stages' commands is this interpreter; the clone's tools import its own src.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(clone / "src"), env.get("PYTHONPATH")]))
    dvc = [sys.executable, "-m", "dvc"]
    user, email = identity(Path.cwd())
    clone.mkdir()
    step("git clone", ["git", "clone", "-q", "--no-checkout", url, "."], clone, env)
    checked_name(clone, name)
    if git(clone, "checkout", "-q", commit).returncode != 0:
        raise ExperimentFailed(f"commit {commit[:7]} is not on {url}: push it first (git push)")
    git(clone, "config", "user.name", user)
    git(clone, "config", "user.email", email)
    remote = committed_dvc_remote(clone, remote)
    configure_dvc(clone, remote, cache)
    sets = [f"-S{param}" for param in params]
    step("dvc exp run", [*dvc, "exp", "run", "--pull", "--allow-missing", "-n", name, *sets], clone, env)
    step("dvc exp push", [*dvc, "exp", "push", "origin", name], clone, env)
    step("tools/share_runs.py", [sys.executable, "tools/share_runs.py"], clone, env)
    ref = experiment_ref(commit, name)
    ours = git(clone, "rev-parse", ref).stdout.strip()
    theirs = remote_refs(url, ref).get(ref)
    if theirs is None:
        raise ExperimentFailed(f"dvc exp push left {name} off {url}")
    if theirs != ours:
        raise ExperimentFailed(
            f"{url} has another experiment {name} of {commit[:7]} ({theirs[:7]}, not this run's {ours[:7]}): "
            "a teammate's of the same name? Choose another name"
        )


def configure_dvc(clone: Path, remote: str, cache: Path) -> None:
    """The clone pushes to remote and shares the node's cache (.dvc/config.local, as `dvc remote
    default --local` and `dvc cache dir --local` write it)."""
    from dvc.repo import Repo

    with Repo(str(clone)) as dvc_repo, dvc_repo.config.edit("local") as local:
        local["core"]["remote"] = remote
        local["cache"]["dir"] = str(cache)
        local["cache"]["type"] = LINKS


def run_experiment(
    name: str, params: list[str], url: str, commit: str, dvc_remote: str | None, work: Path
) -> dict[str, Any]:
    """The experiment's result, as the JSON line prints it; ExperimentFailed if it did not land."""
    started = time.monotonic()
    result: dict[str, Any] = {"name": name, "state": "there", "commit": commit, "params": params}
    remove_stale(work / "clones")
    if experiment_ref(commit, name) in remote_refs(url, experiment_ref(commit, name)):
        return result | {"seconds": round(time.monotonic() - started, 1), "metrics": {}}
    folder, lock = claim(work / "clones", name)
    try:
        run_in(folder / "repo", url, commit, name, params, dvc_remote, work / "dvc-cache")
        metrics = headline_metrics(folder / "repo").get("", {})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)
    return result | {"state": "landed", "seconds": round(time.monotonic() - started, 1), "metrics": metrics}


def stop_on_sigterm() -> None:
    """SIGTERM (an engine cancelling: scancel, a CI timeout, Ray) ends the steps and removes the clone,
    as Ctrl-C does."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="run_experiment", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-n", "--name", required=True, help="the experiment's name, as dvc exp run -n takes it"
    )
    parser.add_argument(
        "-S", "--set-param", dest="params", action="append", default=[], metavar="[FILE:]PARAM=VALUE",
        help="as dvc exp run takes it, one value each: -S dropout.fc=0.3",
    )  # fmt: skip
    parser.add_argument(
        "--git-remote", default="origin", help="a remote of this checkout, or a URL (default: origin)"
    )
    parser.add_argument(
        "--rev", default="HEAD", help="the pushed commit to run (default: HEAD of this checkout)"
    )
    parser.add_argument("--dvc-remote", help="gets the outputs (default: the commit's default DVC remote)")
    parser.add_argument(
        "--work-dir", type=Path, default=default_work_dir(), help="clones and this node's DVC cache"
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    result: dict[str, Any] = {"name": args.name, "state": "failed", "params": args.params}
    started = time.monotonic()
    try:
        params = checked_point(args.params)
        url, commit = source(args.git_remote, args.rev)
        result["commit"] = commit
        result = run_experiment(args.name, params, url, commit, args.dvc_remote, args.work_dir.resolve())
    except ConvlabError as error:
        log = error.log if isinstance(error, ExperimentFailed) else ""
        if log:
            print(log, file=sys.stderr)
        seconds = round(time.monotonic() - started, 1)
        print(json.dumps(result | {"seconds": seconds, "metrics": {}, "error": str(error), "log": log}))
        raise
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    run_main("run_experiment", main)
