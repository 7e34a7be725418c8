"""Outputs appear whole or not at all: a failure mid-write (a full disk too) keeps the old file and
leaves no temp, and the temps of killed writes are removed by the next write and ignored by git."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from convlab.atomic import DiskFullError, atomic_directory, atomic_open, write_bytes, write_json
from convlab.checkpoint import save_checkpoint
from convlab.errors import run_stage
from convlab.logs import write_metrics, write_table
from convlab.model import ConvNet

PROJECT = Path(__file__).resolve().parents[1]


class Interrupted(Exception):
    pass


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"acc": 0.5})
    with pytest.raises(Interrupted), atomic_open(target) as handle:
        handle.write(b'{"acc": 0.')
        raise Interrupted
    assert target.read_text() == '{\n  "acc": 0.5\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Interrupted), atomic_open(tmp_path / "model.pt") as handle:
        handle.write(b"partial")
        raise Interrupted
    assert list(tmp_path.iterdir()) == []


def test_failed_directory_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "report"
    with atomic_directory(target) as tmp:
        (tmp / "report.md").write_text("old")
    with pytest.raises(Interrupted), atomic_directory(target) as tmp:
        (tmp / "report.md").write_text("new, half")
        raise Interrupted
    assert [p.name for p in target.iterdir()] == ["report.md"]
    assert (target / "report.md").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_metrics_refuse_nan_and_inf(tmp_path: Path) -> None:
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="metrics must be finite"):
            write_metrics(tmp_path / "m.json", {"variant": {"acc": bad}})
    assert list(tmp_path.iterdir()) == []


def test_table_round_trip(tmp_path: Path) -> None:
    write_table(tmp_path / "t.csv", [{"epoch": 1, "acc": 0.5}, {"epoch": 2, "acc": 0.75}])
    assert (tmp_path / "t.csv").read_text() == "epoch,acc\n1,0.5\n2,0.75\n"
    with pytest.raises(ValueError, match="no rows"):
        write_table(tmp_path / "empty.csv", [])


# --- a full disk: one clear error naming the target, the old output whole, no temp left -------------


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Temp files whose writes fail as on a full disk: their descriptor is /dev/full's, so the
    kernel itself answers every write with ENOSPC, through the same Python and torch layers."""
    real_mkstemp = tempfile.mkstemp

    def mkstemp(**kwargs: str) -> tuple[int, str]:
        fd, name = real_mkstemp(**kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_full_disk_keeps_the_old_file_and_names_the_target(tmp_path: Path, full_disk: None) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("old\n")
    with pytest.raises(DiskFullError, match=f"^no space left on device while writing {target}$"):
        write_json(target, {"acc": 0.5})
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_torch_save_on_a_full_disk_is_a_disk_full_error(tmp_path: Path, full_disk: None) -> None:
    # torch reports its failed write as RuntimeError "[enforce fail ...] unexpected pos ...".
    target = tmp_path / "model.pt"
    with pytest.raises(DiskFullError, match="no space left on device while writing .*model.pt"):
        save_checkpoint(target, [{"seed": 0, "state_dict": ConvNet().state_dict()}])
    assert list(tmp_path.iterdir()) == []


def test_a_write_failing_for_space_inside_a_folder_names_the_folder(tmp_path: Path, full_disk: None) -> None:
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "stats.json").write_text("old")
    with pytest.raises(DiskFullError, match=f"^no space left on device while writing {target}$"):  # noqa: PT012
        with atomic_directory(target) as tmp:
            write_bytes(tmp / "train.npz", b"x" * 100_000)
    assert [p.name for p in target.iterdir()] == ["stats.json"]
    assert (target / "stats.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]


def test_other_write_errors_are_not_taken_for_a_full_disk(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="Input/output error") as err, atomic_open(tmp_path / "m.json"):
        raise OSError(errno.EIO, "Input/output error")
    assert not isinstance(err.value, DiskFullError)
    assert list(tmp_path.iterdir()) == []


def test_a_stage_on_a_full_disk_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def main(argv: list[str]) -> None:
        with atomic_open(tmp_path / "m.pt") as handle:
            handle.write(b"x")
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(SystemExit) as exit_:
        run_stage("train", main)
    assert exit_.value.code == 1
    message = f"train: error: no space left on device while writing {tmp_path / 'm.pt'}\n"
    assert capsys.readouterr().err == message
    assert list(tmp_path.iterdir()) == []


# --- temps of killed writes: removed by the next write of the same target, ignored by git ------------


def test_a_killed_writes_temp_file_goes_with_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "train_baseline-seed0.pt"
    stale = tmp_path / ".train_baseline-seed0.pt.k2j_9xq1.tmp"
    stale.write_bytes(b"half a checkpoint")
    others = [tmp_path / ".train_baseline-seed0.pt.x.y.tmp", tmp_path / ".train_baseline-seed1.pt.abcd12.tmp"]
    for other in others:  # the temps of other targets stay
        other.write_bytes(b"")
    write_bytes(target, b"checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, *(o.name for o in others)])


def test_a_killed_folders_temps_go_with_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    stale_tmp = tmp_path / ".prepared.abc123_x.tmp"
    stale_old = tmp_path / ".prepared.q8w7e6r5.old"
    (stale_tmp / "sub").mkdir(parents=True)
    (stale_tmp / "sub" / "train.npz").write_bytes(b"half")
    (stale_old / "prepared").mkdir(parents=True)
    with atomic_directory(target) as tmp:
        (tmp / "stats.json").write_text("{}")
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]


@pytest.mark.parametrize(
    "name",
    [
        "data/.prepared.k2j9xq1a.tmp/train.npz",
        ".report.abc_1234.tmp/report.md",
        ".convlab/resume/.train_baseline-seed0.pt.k2j9xq1a.tmp",
        "models/.baseline.pt.k2j9xq1a.tmp",
        "plots/.confusion.k2j9xq1a.old/confusion/baseline.csv",
        "data/raw/.cifar-10-python.tar.gz.k2j9xq1a.part",
    ],
)
def test_git_ignores_the_temps(name: str) -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", name], cwd=PROJECT, capture_output=True, check=False
    )
    assert result.returncode == 0, f"git would commit {name}"


@pytest.mark.parametrize("name", ["params.yaml", "src/convlab/atomic.py", "metrics/test.json", "plots/x.csv"])
def test_git_does_not_ignore_project_files(name: str) -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", name], cwd=PROJECT, capture_output=True, check=False
    )
    assert result.returncode == 1


FULL_DISK_SCRIPT = """
import sys
from pathlib import Path
from convlab.atomic import DiskFullError, write_text
from convlab.checkpoint import save_checkpoint
from convlab.model import ConvNet

folder = Path(sys.argv[1])
write_text(folder / "baseline.pt", "old")
write_text(folder / "test.json", "old")
for write in (
    lambda: save_checkpoint(folder / "baseline.pt", [{"seed": 0, "state_dict": ConvNet().state_dict()}]),
    lambda: write_text(folder / "test.json", "0" * 1_000_000),
):
    try:
        write()
    except DiskFullError as err:
        print(err)
contents = [(folder / name).read_text() for name in ("baseline.pt", "test.json")]
print(sorted(p.name for p in folder.iterdir()), *contents)
"""


def test_a_real_full_disk(tmp_path: Path) -> None:
    """A 256 KiB tmpfs in a private mount namespace, where unshare and mount are allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        'mount -t tmpfs -o size=256k tmpfs "$0"',
    ]
    try:
        probe = subprocess.run([*mount, str(disk)], capture_output=True, check=False)
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    mount[-1] += ' && exec "$1" -c "$2" "$0"'
    result = subprocess.run(
        [*mount, str(disk), sys.executable, FULL_DISK_SCRIPT], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"no space left on device while writing {disk / 'baseline.pt'}",
        f"no space left on device while writing {disk / 'test.json'}",
        "['baseline.pt', 'test.json'] old old",
    ]
