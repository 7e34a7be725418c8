"""One 4-point grid on three engines, back to back, and the disk an experiment takes with and
without the node's shared DVC cache; the study's own pipeline on a synthetic archive.

    python bench/sweep_engines.py [--per-batch 200] [--epochs 2] [--source GIT_URL]

The committed HEAD of this checkout (or of --source) is cloned, given the archive (5 x per_batch
training images), one seed and `epochs` epochs per variant, reproduced, and pushed to a bare origin
and a folder DVC remote. Then, each engine with two experiments at a time and one thread each,
and each its own dropout.fc values (so the run cache restores none):
- DVC's queue: `dvc exp run --queue -S ...` and `dvc queue start -j 2`, in a clone with the
  commit's outputs pulled, until the four have run (its experiments stay in that clone);
- Ray: `tools/ray_sweep.py` on a local instance (workers at nice 0), pushes, pull and table;
- a loop: `xargs -P 2` of `tools/run_experiment.py`, as a Slurm array would run it.
Then one experiment in a clone with its own cache (`dvc exp run --pull --allow-missing`), and one
in a clone sharing a cache that a first experiment filled (run_experiment.py's configuration):
the bytes each added to the disk (`du`, which counts a hardlinked file once).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tools"))
from run_experiment import LINKS  # noqa: E402

from convlab.cifar import file_md5  # noqa: E402
from convlab.synthetic import write_archive  # noqa: E402

VARIANTS = ("baseline", "dropout", "staged_dropout")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1", "PYTHONPATH": "src"}
ENV["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{ENV['PATH']}"


def run(cwd: Path, *args: str, **env: str) -> str:
    done = subprocess.run(args, cwd=cwd, env={**ENV, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{shlex.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def dvc(cwd: Path, *args: str, **env: str) -> str:
    return run(cwd, sys.executable, "-m", "dvc", *args, **env)


def study(root: Path, source: str, per_batch: int, epochs: int) -> tuple[Path, Path]:
    """The study reproduced on a synthetic archive, pushed: (the clone, its bare origin)."""
    archive = write_archive(root / "cifar-10-python.tar.gz", per_batch=per_batch, test_size=per_batch)
    repo = root / "study"
    run(root, "git", "clone", "-q", source, str(repo))
    yaml = YAML()
    params = yaml.load(repo / "params.yaml")
    params["data"].update(url=archive.as_uri(), md5=file_md5(archive), val_size=per_batch)
    params["train"]["seeds"] = 1
    for variant in VARIANTS:
        params[variant]["epochs"] = epochs
    yaml.dump(params, repo / "params.yaml")
    dvc(repo, "remote", "add", "-d", "bench", str(root / "storage"))
    (root / "storage").mkdir()
    dvc(repo, "repro")
    run(repo, "git", "config", "user.name", "sweep bench")  # the tools commit as the driver's identity
    run(repo, "git", "config", "user.email", "sweep-bench@example.org")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "the study on a synthetic archive")
    dvc(repo, "push")
    run(root, "git", "clone", "-q", "--bare", str(repo), str(root / "origin.git"))
    run(repo, "git", "remote", "set-url", "origin", str(root / "origin.git"))
    run(repo, "git", "fetch", "-q", "origin")
    return repo, root / "origin.git"


def timed(what: str, action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    seconds = time.monotonic() - started
    print(f"{what}: {seconds:.0f} s (load average after: {os.getloadavg()[0]:.1f})", flush=True)
    return seconds


def queue(root: Path, origin: Path, values: str) -> None:
    clone = root / "queue"
    run(root, "git", "clone", "-q", str(origin), str(clone))
    dvc(clone, "pull")
    dvc(clone, "exp", "run", "--queue", "-S", f"dropout.fc={values}")
    dvc(clone, "queue", "start", "-j", "2")
    while True:  # `dvc queue start` returns at once; its workers may stop early (treeverse/dvc#10562)
        time.sleep(2)
        status = dvc(clone, "queue", "status")
        if "Running" not in status and "Queued" not in status:
            break
        if "Queued" in status and "Running" not in status:
            dvc(clone, "queue", "start", "-j", "2")
    if status.count("Success") != 4:
        sys.exit(f"the queue did not run all four:\n{status}")


def disk(path: Path, *more: Path) -> int:
    """Bytes on disk under the paths, a hardlinked file counted once."""
    return int(run(path, "du", "-sbc", str(path), *map(str, more)).splitlines()[-1].split()[0])


def experiment_in_clone(root: Path, origin: Path, name: str, fc: str, cache: Path | None) -> Path:
    clone = root / name
    run(root, "git", "clone", "-q", str(origin), str(clone))
    if cache is not None:
        dvc(clone, "cache", "dir", "--local", str(cache))
        dvc(clone, "config", "--local", "cache.type", LINKS)
    dvc(clone, "exp", "run", "--pull", "--allow-missing", "-S", f"dropout.fc={fc}")
    return clone


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-batch", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--source", default=str(PROJECT), help="the project to clone (default: this checkout)"
    )
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}")
    print(run(PROJECT, "grep", "-m3", r"cpu family\|^model", "/proc/cpuinfo").strip())
    commit = run(PROJECT, "git", "ls-remote", args.source, "HEAD").split()[0][:7]
    print(f"cores: {os.cpu_count()}; commit: {commit}")
    with tempfile.TemporaryDirectory(prefix="sweep_engines-") as tmp:
        root = Path(tmp)
        ENV["XDG_CACHE_HOME"] = str(root / "cache")  # the runs' resume state: not the user's
        repo, origin = study(root, args.source, args.per_batch, args.epochs)
        timed("dvc queue start -j 2", lambda: queue(root, origin, "0.21,0.31,0.41,0.51"))
        ray = {
            "HOME": str(root / "home"),
            "XDG_CACHE_HOME": str(root / "ray-node"),
            "RAY_worker_niceness": "0",
        }
        sweep = [sys.executable, "tools/ray_sweep.py", "-S", "dropout.fc=0.22,0.32,0.42,0.52", "-n", "ray"]
        timed("tools/ray_sweep.py", lambda: run(repo, *sweep, **ray))
        loop = ["xargs", "-P", "2", "-I{}", sys.executable, "tools/run_experiment.py", "-n", "loop-{}", "-S",
                "dropout.fc={}"]  # fmt: skip
        node = {"XDG_CACHE_HOME": str(root / "loop-node")}
        timed("xargs -P 2 tools/run_experiment.py", lambda: subprocess.run(
            loop, cwd=repo, env={**ENV, **node}, input="0.23\n0.33\n0.43\n0.53\n", text=True, check=True,
            capture_output=True))  # fmt: skip

        own = experiment_in_clone(root, origin, "own-cache", "0.24", None)
        print(f"disk of an experiment with its own cache: {disk(own) / 1e6:.1f} MB")
        shared = root / "shared-cache"
        experiment_in_clone(root, origin, "first", "0.25", shared)
        before = disk(shared)
        second = experiment_in_clone(root, origin, "second", "0.26", shared)
        added = disk(second, shared) - before
        print(f"disk of an experiment sharing the node's cache: {added / 1e6:.1f} MB")
        print(f"the node's cache, once: {before / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
