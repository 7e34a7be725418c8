"""Team workflows on DVC's own machinery: push/pull through local and S3 remotes, queued sweeps."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from project import PROJECT, copy_project, dvc, git, ran_stages, run

from convlab.cifar import file_md5
from convlab.stage_files import TEST_METRIC, VAL_METRIC, Metric
from convlab.synthetic import write_archive

pytestmark = pytest.mark.slow

SPEC = importlib.util.spec_from_file_location("sweep", PROJECT / "tools" / "sweep.py")
sweep = importlib.util.module_from_spec(SPEC)  # type: ignore[arg-type]
sys.modules["sweep"] = sweep  # its dataclasses look their module up while it loads
SPEC.loader.exec_module(sweep)  # type: ignore[union-attr]

# What `dvc exp run -S dropout.fc=...` runs where the other variants' results are the committed ones.
DROPOUT_ONLY = ["train_dropout", "evaluate_test@dropout", "report"]

OUTPUTS = [
    "data/raw/cifar-10-python.tar.gz",
    "data/prepared/train.npz",
    "models/baseline.pt",
    "models/dropout.pt",
    "models/staged_dropout.pt",
]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small project, reproduced once and committed, shared by the tests below."""
    root = tmp_path_factory.mktemp("team")
    archive = write_archive(root / "cifar-10-python.tar.gz", per_batch=200, test_size=200)
    one_epoch = {"epochs": 1}
    repo = copy_project(
        root / "repo",
        {
            "data": {"url": archive.as_uri(), "md5": file_md5(archive), "val_size": 200},
            "train": {"lr": 0.01, "log_every": 10, "eval_batch_size": 200},
            "baseline": one_epoch,
            "dropout": one_epoch,
            "staged_dropout": one_epoch,
        },
    )
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "small results")
    return repo


def clone(repo: Path, target: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(repo), str(target)], check=True)
    return target


def assert_round_trip(repo: Path, remote: str, target: Path, **env: str) -> None:
    """Pulled outputs equal the pushed ones, and `dvc repro` then trains nothing."""
    copy = clone(repo, target)
    for name, value in remote_config(repo).items():
        dvc(copy, "remote", "add", "--local", "-f", name, value["url"])
        for option, setting in value.items():
            if option != "url":
                dvc(copy, "remote", "modify", "--local", name, option, setting)
    dvc(copy, "pull", "-r", remote, **env)
    for output in OUTPUTS:
        assert (copy / output).read_bytes() == (repo / output).read_bytes(), output
    assert "up to date" in dvc(copy, "status").stdout
    assert ran_stages(dvc(copy, "repro").stdout) == []


def remote_config(repo: Path) -> dict[str, dict[str, str]]:
    """The remotes configured in the repo's .dvc/config.local, as {name: {option: value}}."""
    config: dict[str, dict[str, str]] = {}
    current = None
    for line in (repo / ".dvc/config.local").read_text().splitlines():
        if match := re.match(r"\['remote \"(.+)\"'\]", line.strip()):
            current = config.setdefault(match.group(1), {})
        elif current is not None and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            current[key] = value
    return config


def test_push_and_pull_through_a_local_remote(reproduced: Path, tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    dvc(reproduced, "remote", "add", "--local", "-f", "folder", str(storage))
    dvc(reproduced, "push", "--run-cache", "-r", "folder")
    assert any((storage / "files").rglob("*"))
    assert any((storage / "runs").rglob("*"))  # the run cache went too
    assert_round_trip(reproduced, "folder", tmp_path / "clone")


RESULTS = ("metrics", "plots", "report", "models")


def results(repo: Path) -> dict[str, bytes]:
    """Every file of the stages' results (git-tracked and DVC-cached), by path."""
    return {
        str(path.relative_to(repo)): path.read_bytes()
        for folder in RESULTS
        for path in sorted((repo / folder).rglob("*"))
        if path.is_file() and path.name != ".gitignore"
    }


def set_param(repo: Path, section: str, key: str, value: object) -> None:
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def test_returning_to_earlier_params_restores_every_stage_from_the_run_cache(reproduced: Path) -> None:
    committed = results(reproduced)
    other = dvc(reproduced, "exp", "run", "-S", "dropout.fc=0.3")
    assert ran_stages(other.stdout) == DROPOUT_ONLY
    assert results(reproduced) != committed
    # Back to the committed value: every stage that re-ran is restored, none trains again.
    again = dvc(reproduced, "exp", "run", "-S", "dropout.fc=0.1")
    assert ran_stages(again.stdout) == [], again.stdout
    for stage in DROPOUT_ONLY:
        assert f"Stage '{stage}' is cached - skipping run" in again.stdout, again.stdout
    assert results(reproduced) == committed


def test_shared_runs_spare_a_teammate_the_training(reproduced: Path, tmp_path: Path) -> None:
    """tools/share_runs.py pushes every recorded run with its files: another clone of the commit,
    given one of those runs' params, restores it from the remote and trains nothing."""
    storage = tmp_path / "shared"
    storage.mkdir()  # a folder remote is made by whoever sets it up (share_runs never creates one)
    dvc(reproduced, "remote", "add", "--local", "-f", "shared", str(storage))
    dvc(reproduced, "exp", "run", "-S", "dropout.fc=0.35")  # a run only this clone has made
    made = results(reproduced)
    dvc(reproduced, "exp", "run", "-S", "dropout.fc=0.1")  # back to the committed results
    run(reproduced, sys.executable, "tools/share_runs.py", "-r", "shared")

    teammate = clone(reproduced, tmp_path / "teammate")
    dvc(teammate, "remote", "add", "--local", "-d", "shared", str(storage))
    dvc(teammate, "pull", "--run-cache")  # the commit's outputs and the records of every run
    set_param(teammate, "dropout", "fc", 0.35)
    result = dvc(teammate, "repro", "--pull")  # --pull: the files of the run it restores
    assert ran_stages(result.stdout) == [], result.stdout
    assert "Stage 'train_dropout' is cached - skipping run" in result.stdout, result.stdout
    assert results(teammate) == made


@pytest.fixture
def s3_server():
    """moto's S3 server on loopback, with a bucket; stopped after the test."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("dvc_s3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="convlab-team")
    yield endpoint, credentials
    server.stop()


def test_push_and_pull_through_s3(reproduced: Path, tmp_path: Path, s3_server) -> None:
    endpoint, credentials = s3_server
    dvc(reproduced, "remote", "add", "--local", "-f", "team", "s3://convlab-team/cache")
    dvc(reproduced, "remote", "modify", "--local", "team", "endpointurl", endpoint)
    dvc(reproduced, "push", "--run-cache", "-r", "team", **credentials)
    assert_round_trip(reproduced, "team", tmp_path / "clone", **credentials)


def stop_processes_in(folder: Path, grace: float = 20) -> None:
    """End what the queue left running in folder: `dvc queue stop` only asks workers to exit."""
    deadline = time.monotonic() + grace
    while True:
        left = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                    left.append(int(proc.name))
            except OSError:
                continue
        if not left:
            return
        if time.monotonic() > deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return
        time.sleep(1)


def wait_for_queue(repo: Path, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = dvc(repo, "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(3)
    dvc(repo, "queue", "kill", "--all", check=False)
    raise AssertionError(f"queue did not finish in {timeout} s:\n{status}")


def shown_metric(data: dict, metric: Metric, variant: str) -> float:
    """A metric in `dvc exp show --json` data, by the name Metric.column() gives it: file, key path."""
    file, _, keys = metric.column(variant).partition(":")
    value = data["metrics"][file]["data"]
    for key in keys.split("."):
        value = value[key]
    return value


def experiments_shown(repo: Path) -> dict[str, dict]:
    """Every experiment of HEAD in `dvc exp show --json`, by name: its rev and data."""
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    return {rev["name"]: rev for row in shown for e in row["experiments"] or [] for rev in e["revs"]}


def param(experiment: dict, section: str, key: str) -> object:
    return experiment["data"]["params"]["params.yaml"]["data"][section][key]


def table_rows(text: str) -> list[list[str]]:
    """The rows of tools/sweep.py's Markdown table (header, separator and caption left out)."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.split("\n\n")[0].splitlines()[2:]
    ]


def test_a_sweep_queued_after_the_quick_path_is_tabled(
    reproduced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: the quick path (`dvc exp run -S train.seeds=1` on a study of more seeds), then sweeps
    queued from that workspace and run by two workers. tools/sweep.py tables the quick run and the
    points that differ from it only in dropout.fc, although every one of them changed train.seeds
    too, and leaves out the point that also changed dropout.pool1, saying what it held fixed."""
    study = clone(reproduced, tmp_path / "study")
    # The fixture's outputs from its cache: the clone's quick path restores them, training nothing.
    dvc(study, "cache", "dir", "--local", str(reproduced / ".dvc" / "cache"))
    dvc(study, "checkout")
    set_param(study, "train", "seeds", 2)  # the committed study runs two seeds per variant
    git(study, "commit", "-q", "-am", "a study of two seeds")
    quick = dvc(study, "exp", "run", "-n", "quick", "-S", "train.seeds=1")
    assert ran_stages(quick.stdout) == [], quick.stdout  # the fixture's study is the one-seed run
    dvc(study, "exp", "run", "--queue", "-S", "dropout.fc=0.2,0.4")
    dvc(study, "exp", "run", "--queue", "-n", "pool", "-S", "dropout.fc=0.2", "-S", "dropout.pool1=0.2")
    try:
        dvc(study, "queue", "start", "-j", "2", OMP_NUM_THREADS="1")  # one core each (README)
        status = wait_for_queue(study)
    finally:
        dvc(study, "queue", "stop", "--kill", check=False)
        stop_processes_in(study)
    assert status.count("Success") == 3, status

    exps = experiments_shown(study)
    assert len(exps) == 4 and all(param(e, "train", "seeds") == 1 for e in exps.values())
    out = tmp_path / "sweep"
    result = run(study, sys.executable, "tools/sweep.py", "dropout.fc", "--out", str(out))
    text = (out / "dropout.fc.md").read_text()
    assert text in result.stdout
    expected = []
    for name, e in sorted(exps.items(), key=lambda item: param(item[1], "dropout", "fc")):
        val, test = (shown_metric(e["data"], metric, "dropout") for metric in (VAL_METRIC, TEST_METRIC))
        if name != "pool":
            expected.append([str(param(e, "dropout", "fc")), name, f"{100 * val:.1f}%", f"{100 * test:.1f}%"])
    assert table_rows(text) == expected
    assert [row[0] for row in expected] == ["0.1", "0.2", "0.4"]
    assert "Held fixed: dropout.pool1=0.1, train.seeds=1." in text
    assert "Left out, differing in more than dropout.fc: dropout.pool1=0.2 (pool)." in text
    assert (out / "dropout.fc.png").stat().st_size > 1000

    # Where an experiment ran several seeds, ± comes from the runs its commit holds: each
    # experiment's rev has them, and they agree with the metric dvc exp show gives.
    monkeypatch.chdir(study)
    for name, e in exps.items():
        for accuracy in sweep.ACCURACIES:
            runs = sweep.git_runs(e["rev"], "dropout", accuracy)
            assert runs == [pytest.approx(shown_metric(e["data"], accuracy.metric, "dropout"))], name


def team_remotes(reproduced: Path, tmp_path: Path) -> Path:
    """A bare git repository as the team's `origin`, holding the project's commit and, committed on
    top, a DVC remote (a folder) that already has the committed results, so no machine trains them
    again. Returns origin."""
    storage = tmp_path / "storage"
    dvc(reproduced, "remote", "add", "--local", "-f", "machines", str(storage))  # "team": the S3 test's
    dvc(reproduced, "push", "-r", "machines")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(reproduced), str(origin)], check=True)
    lead = clone(origin, tmp_path / "lead")
    dvc(lead, "remote", "add", "-d", "team", str(storage))  # committed: every clone has it
    git(lead, "commit", "-q", "-am", "the team's DVC remote")
    git(lead, "push", "-q", "origin", "HEAD")
    return origin


def run_and_push(origin: Path, machine: Path, name: str, fc: float) -> None:
    """One machine's share of the sweep: clone, pull the committed outputs, run one experiment,
    push it (its commit to origin, its outputs to the default DVC remote)."""
    clone(origin, machine)
    dvc(machine, "pull")  # data and the committed models: only the swept variant trains
    ran = dvc(machine, "exp", "run", "-n", name, "-S", f"dropout.fc={fc}")
    assert ran_stages(ran.stdout) == DROPOUT_ONLY, ran.stdout
    pushed = dvc(machine, "exp", "push", "origin")  # every experiment of HEAD; no name needed
    assert f"Pushed experiment {name}" in pushed.stdout, pushed.stdout


def test_one_sweep_over_several_machines(reproduced: Path, tmp_path: Path) -> None:
    """Two machines each run one point of a sweep and `dvc exp push` it; a third `dvc exp pull`s
    them all, with their models, and tools/sweep.py tables both."""
    origin = team_remotes(reproduced, tmp_path)
    values = {"gpu1": 0.2, "gpu2": 0.4}  # experiment (named after its machine): its dropout.fc
    for name, fc in values.items():
        run_and_push(origin, tmp_path / name, name, fc)

    reader = clone(origin, tmp_path / "reader")
    dvc(reader, "exp", "pull", "origin")  # every experiment of HEAD on origin, with its outputs
    shown = json.loads(dvc(reader, "exp", "show", "--json").stdout)
    exps = {rev["name"]: rev["data"] for row in shown for e in row["experiments"] or [] for rev in e["revs"]}
    assert sorted(exps) == sorted(values)
    for name, exp in exps.items():
        model = exp["outs"]["models/dropout.pt"]["hash"]
        assert (reader / ".dvc/cache/files/md5" / model[:2] / model[2:]).is_file(), name

    out = tmp_path / "sweep"
    run(reader, sys.executable, "tools/sweep.py", "dropout.fc", "--out", str(out))
    expected = []
    for name, fc in values.items():
        val, test = (shown_metric(exps[name], metric, "dropout") for metric in (VAL_METRIC, TEST_METRIC))
        expected.append(f"| {fc} | {name} | {100 * val:.1f}% | {100 * test:.1f}% |")
    table, caption = (out / "dropout.fc.md").read_text().split("\n\n")
    assert table.splitlines()[2:] == expected
    assert "Held fixed" not in caption and "Left out" not in caption  # the machines ran one sweep


def test_a_fresh_clone_retrains_only_the_changed_variant(reproduced: Path, tmp_path: Path) -> None:
    """Issue 20 item 6, the README's recipe for a clone with no DVC remote and no cache: the data
    stages first, then `--allow-missing`, and only the changed variant trains. Then the two
    restores: after a refused param, and back to HEAD."""
    fresh = clone(reproduced, tmp_path / "fresh")
    # data.url is a file here; offline, CIFAR10_URL=file:///... points the download at a copy.
    data = dvc(fresh, "repro", "split")
    assert ran_stages(data.stdout) == ["download", "split"]
    assert run(fresh, "git", "status", "--porcelain").stdout == ""  # the committed data, exactly
    ran = dvc(fresh, "exp", "run", "--allow-missing", "-S", "dropout.fc=0.5")
    assert ran_stages(ran.stdout) == DROPOUT_ONLY, ran.stdout
    assert not (fresh / "models/baseline.pt").exists()  # the other variants keep the committed results
    for variant in ("baseline", "staged_dropout"):
        for metric in (VAL_METRIC, TEST_METRIC):
            assert (fresh / metric.path(variant)).read_bytes() == (
                reproduced / metric.path(variant)
            ).read_bytes()
    made = results(fresh)

    # A refused param: DVC deletes the stage's outputs before the stage refuses it. Putting the param
    # back and reproducing that stage restores them from the run cache; --allow-missing would not
    # (it skips a stage whose outputs are all that is missing).
    refused = dvc(fresh, "exp", "run", "--allow-missing", "-S", "dropout.fc=1.5", check=False)
    assert refused.returncode != 0 and "dropout.fc = 1.5 is not allowed" in refused.stderr + refused.stdout
    assert not (fresh / "models/dropout.pt").exists() and not (fresh / VAL_METRIC.path("dropout")).exists()
    set_param(fresh, "dropout", "fc", 0.5)
    restored = dvc(fresh, "repro", "train_dropout")
    assert ran_stages(restored.stdout) == [], restored.stdout
    assert "Stage 'train_dropout' is cached - skipping run" in restored.stdout
    assert results(fresh) == made

    # Back to HEAD: `git checkout params.yaml` alone leaves the experiment's dvc.lock, results and
    # models, so `dvc checkout` would change nothing and the next experiment would re-train dropout
    # at HEAD's params. Checking out the results too puts HEAD's back; the models HEAD names were
    # never in this clone's cache, so `dvc checkout` says so (a remote's `dvc pull` would fetch them).
    # `git rm --cached` first: an experiment can leave an index entry that matches a rewritten
    # result by size and time (here plots/test/dropout.csv, on a CPU where both tests score alike).
    paths = ["params.yaml", "dvc.lock", "metrics", "plots", "report"]
    run(fresh, "git", "rm", "-rq", "--cached", *paths)
    run(fresh, "git", "checkout", "HEAD", "--", *paths)
    checkout = dvc(fresh, "checkout", check=False)
    assert checkout.returncode != 0 and "models/dropout.pt" in checkout.stderr + checkout.stdout
    assert run(fresh, "git", "status", "--porcelain").stdout == ""
    assert not (fresh / "models/dropout.pt").exists()  # the experiment's model: not HEAD's
    status = dvc(fresh, "status", "--json").stdout
    assert "modified" not in status and "params.yaml" not in status, status  # only missing models
