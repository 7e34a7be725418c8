"""tools/ray_sweep.py: a sweep of DVC experiments as Ray tasks, each in its own clone, pushed to a
git and a DVC remote; resumed by name; failures reported by name while the others land."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from project import copy_project, dvc, git

from convlab.cifar import file_md5
from convlab.stage_files import VAL_METRIC
from convlab.synthetic import write_archive

SPEC = importlib.util.spec_from_file_location(
    "ray_sweep", Path(__file__).parents[1] / "tools" / "ray_sweep.py"
)
ray_sweep = importlib.util.module_from_spec(SPEC)  # type: ignore[arg-type]
SPEC.loader.exec_module(ray_sweep)  # type: ignore[union-attr]


def test_the_grid_is_dvcs_own_expansion() -> None:
    experiments, swept = ray_sweep.grid(
        ["dropout.fc=0.1,0.3", "seed=0,1", "train.lr=0.01", "other.yaml:a=x,y"]
    )
    assert len(experiments) == 8
    assert experiments[0] == ["dropout.fc=0.1", "seed=0", "train.lr=0.01", "other.yaml:a=x"]
    assert experiments[-1] == ["dropout.fc=0.3", "seed=1", "train.lr=0.01", "other.yaml:a=y"]
    assert swept == ["dropout.fc", "seed", "other.yaml:a"]  # train.lr has one value: not an axis
    assert ray_sweep.grid(["seed=range(0,3)"])[0] == [["seed=0"], ["seed=1"], ["seed=2"]]


def test_a_bad_grid_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match=r"^ray_sweep: error: bad -S value: "):
        ray_sweep.grid(["dropout.fc=[0.1"])


def test_names_follow_the_params_not_their_place_in_the_grid() -> None:
    name = ray_sweep.experiment_name("fc", ["dropout.fc=0.1", "seed=0"])
    assert name.startswith("fc-") and len(name) == len("fc-") + 8
    assert ray_sweep.experiment_name("fc", ["seed=0", "dropout.fc=0.1"]) == name
    assert ray_sweep.experiment_name("fc", ["dropout.fc=0.1", "seed=1"]) != name
    assert ray_sweep.experiment_name("other", ["dropout.fc=0.1", "seed=0"]) != name


def test_metrics_are_every_value_of_the_metrics_files(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/test.json").write_text(json.dumps({"dropout": {"test_acc": 0.7}, "seeds": 1}))
    (tmp_path / "metrics/train.json").write_text(json.dumps({"best_val_acc": 0.8}))
    assert ray_sweep.metrics_of(tmp_path) == {
        "metrics/test.json:dropout.test_acc": 0.7,
        "metrics/test.json:seeds": 1,
        "metrics/train.json:best_val_acc": 0.8,
    }


def sweep(repo: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> list:
    monkeypatch.chdir(repo)
    return ray_sweep.main([*args])


def test_what_would_not_reach_the_workers_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad arguments, uncommitted changes, a commit the git remote lacks and a DVC remote only this
    clone has are each refused in one line, before Ray starts."""
    repo = copy_project(tmp_path / "repo")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(origin)], check=True)
    git(repo, "remote", "add", "origin", str(origin))
    grid = ("-S", "dropout.fc=0.2,0.4")
    for bad, message in (
        (("--gpus-per-run", "1.5"), "--gpus-per-run above 1 must be a whole number"),
        (("--cpus-per-run", "0"), "--cpus-per-run must be above 0"),
        (("--name", "a/b"), "--name 'a/b' cannot be part of a git ref name"),
    ):
        with pytest.raises(SystemExit, match=f"^ray_sweep: error: {re.escape(message)}"):
            sweep(repo, monkeypatch, *grid, *bad)

    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n")
    with pytest.raises(
        SystemExit, match=r"^ray_sweep: error: uncommitted changes would not reach the workers"
    ):
        sweep(repo, monkeypatch, *grid)
    git(repo, "commit", "-q", "-am", "unpushed")
    with pytest.raises(SystemExit, match=r"^ray_sweep: error: commit \w{7} is not on origin"):
        sweep(repo, monkeypatch, *grid)
    git(repo, "push", "-q", "origin", "HEAD")
    with pytest.raises(SystemExit, match=r"^ray_sweep: error: no default DVC remote in \.dvc/config"):
        sweep(repo, monkeypatch, *grid)
    dvc(repo, "remote", "add", "--local", "-d", "mine", str(tmp_path / "storage"))
    with pytest.raises(SystemExit, match=r"^ray_sweep: error: no default DVC remote in \.dvc/config"):
        sweep(repo, monkeypatch, *grid)
    with pytest.raises(SystemExit, match=r"^ray_sweep: error: DVC remote 'mine' is not in the committed"):
        sweep(repo, monkeypatch, *grid, "--dvc-remote", "mine")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small project reproduced and committed, a bare git repository as its origin and a folder
    as the committed default DVC remote, which holds the commit's outputs (so the workers train
    only what a param changes). Returns (repo, origin)."""
    root = tmp_path_factory.mktemp("ray")
    archive = write_archive(root / "cifar-10-python.tar.gz", per_batch=20, test_size=50)
    one_epoch = {"epochs": 1}
    repo = copy_project(
        root / "repo",
        {
            "data": {"url": archive.as_uri(), "md5": file_md5(archive), "val_size": 20},
            "train": {"log_every": 1, "eval_batch_size": 50},
            "baseline": one_epoch,
            "dropout": one_epoch,
            "staged_dropout": one_epoch,
        },
    )
    dvc(repo, "remote", "add", "-d", "team", str(root / "storage"))  # absolute: every worker reaches it
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "small results and the team's remote")
    dvc(repo, "push")
    origin = root / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(origin)], check=True)
    git(repo, "remote", "add", "origin", str(origin))
    return repo, origin


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A real local Ray instance of 2 CPUs, its object store capped (nothing large goes through it).
    Its workers inherit this environment, as a local instance's do."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("CIFAR10_URL", raising=False)
        env.setenv("DVC_NO_ANALYTICS", "1")
        # Ray runs its workers at nice 15; on a machine shared with other tests that halves the
        # experiments' share of the CPU and doubles this test's time.
        env.setenv("RAY_worker_niceness", "0")
        started = time.monotonic()
        ray.init(num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False, log_to_driver=False)
        print(f"ray start: {time.monotonic() - started:.1f} s")
        yield
        stopping = time.monotonic()
        ray.shutdown()
        print(f"ray stop: {time.monotonic() - stopping:.1f} s")


def processes() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line)} of every process readable in /proc."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            found[int(proc.name)] = (parent, (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue
    return found


def descendants(table: dict[int, tuple[int, str]], pid: int) -> list[int]:
    children = [child for child, (parent, _) in table.items() if parent == pid]
    return children + [grandchild for child in children for grandchild in descendants(table, child)]


def lose_a_worker(stop: threading.Event, lost: list[list[int]]) -> None:
    """SIGKILL the first Ray worker of this test seen running an experiment's `dvc`, as when its
    node dies; keeps the pids of what the worker had started in lost."""
    while not stop.wait(0.2) and not lost:
        table = processes()
        for worker in descendants(table, os.getpid()):
            running = descendants(table, worker)
            if table[worker][1].startswith("ray::run_experiment") and any(
                " dvc " in table[pid][1] for pid in running
            ):
                os.kill(worker, signal.SIGKILL)
                lost.append(running)
                return


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def gone(pids: list[int], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:  # not to leave them running, whatever the test says
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return False
        time.sleep(0.5)
    return True


def table_rows(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("| 0.")]


@pytest.mark.slow
def test_a_sweep_on_ray_lands_on_the_remotes_and_resumes(
    team: tuple[Path, Path],
    local_ray: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, origin = team
    base = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    names = {fc: ray_sweep.experiment_name("fc", [f"dropout.fc={fc}"]) for fc in ("0.2", "0.4", "0.6", "0.8")}

    # A typo in the grid: 1.5 is refused by the study's params; the three others land.
    with pytest.raises(SystemExit) as failed:
        sweep(repo, monkeypatch, "-S", "dropout.fc=0.2,0.4,0.6,1.5", "-n", "fc")
    bad = ray_sweep.experiment_name("fc", ["dropout.fc=1.5"])
    assert str(failed.value) == f"ray_sweep: error: 1 of 4 experiments failed ({bad}); the rest are on origin"
    out, _ = capsys.readouterr()
    assert f"{bad}  failed" in out and "dropout.fc" in out and "[0, 1)" in out, out  # its last lines
    assert ray_sweep.remote_experiments(str(origin), base) == {names["0.2"], names["0.4"], names["0.6"]}
    assert len(table_rows(out)) == 3, out

    # The grid fixed: what is on origin is skipped, the one new point runs; its worker is lost
    # mid-run, Ray ends what that worker ran and runs the task again.
    stop, lost = threading.Event(), []
    killer = threading.Thread(target=lose_a_worker, args=(stop, lost))
    killer.start()
    try:
        outcomes = sweep(repo, monkeypatch, "-S", "dropout.fc=0.2,0.4,0.6,0.8", "-n", "fc")
    finally:
        stop.set()
        killer.join()
    assert lost, "no worker was seen running dvc"
    assert gone(lost[0]), "Ray left what the lost worker ran"
    for left in Path(tempfile.gettempdir()).glob(f"ray_sweep-{names['0.8']}-*"):
        shutil.rmtree(left)  # the lost worker's clone (a lost node takes its disk with it)
    assert [(o["name"], o["state"]) for o in outcomes] == [(names["0.8"], "landed")]
    assert outcomes[0]["metrics"][VAL_METRIC.column("dropout")] > 0
    out, _ = capsys.readouterr()
    assert "4 experiments of" in out and "3 on origin already" in out, out
    assert len(table_rows(out)) == 4, out
    assert ray_sweep.remote_experiments(str(origin), base) == set(names.values())

    # The same command again runs nothing; a task that finds its experiment pushed (a retry after
    # the push) does not run it again.
    assert sweep(repo, monkeypatch, "-S", "dropout.fc=0.2,0.4,0.6,0.8", "-n", "fc") == []
    out, _ = capsys.readouterr()
    assert "4 on origin already" in out and len(table_rows(out)) == 4, out
    again = ray_sweep.run_experiment(str(origin), base, names["0.2"], ["dropout.fc=0.2"], "team", 1)
    assert again["state"] == "on remote"

    # Anyone pulls the sweep, with its models.
    reader = tmp_path / "reader"
    subprocess.run(["git", "clone", "-q", str(origin), str(reader)], check=True)
    dvc(reader, "exp", "pull", "origin")
    shown = json.loads(dvc(reader, "exp", "show", "--json").stdout)
    exps = {rev["name"]: rev["data"] for row in shown for e in row["experiments"] or [] for rev in e["revs"]}
    assert sorted(exps) == sorted(names.values())
    for fc, name in names.items():
        assert exps[name]["params"]["params.yaml"]["data"]["dropout"]["fc"] == float(fc)
        model = exps[name]["outs"]["models/dropout.pt"]["hash"]
        assert (reader / ".dvc/cache/files/md5" / model[:2] / model[2:]).is_file(), name
