"""Outputs appear whole or not at all: a failure mid-write keeps the old file and leaves no temp; a
write the system refuses (a full disk, a read-only or forbidden folder, a file where a folder
goes) is one WriteError naming the target; the temps of killed writes are removed by the next write
and ignored by git."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from convlab.atomic import WriteError, atomic_directory, atomic_open, check_writable, write_bytes, write_json
from convlab.checkpoint import save_checkpoint
from convlab.errors import run_stage
from convlab.model import ConvNet

PROJECT = Path(__file__).resolve().parents[1]
RUN = {"seed": 0, "epoch": 1, "val_acc": 0.5, "state_dict": ConvNet().state_dict()}


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


# --- a full disk: one clear error naming the target, the old output whole, no temp left -------------


def test_full_disk_keeps_the_old_file_and_names_the_target(tmp_path: Path, full_disk: None) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("old\n")
    with pytest.raises(WriteError, match=f"^no space left on device while writing {target}$"):
        write_json(target, {"acc": 0.5})
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_torch_save_on_a_full_disk_is_a_disk_full_error(tmp_path: Path, full_disk: None) -> None:
    # torch reports its failed write as RuntimeError "[enforce fail ...] unexpected pos ...".
    target = tmp_path / "model.pt"
    with pytest.raises(WriteError, match="no space left on device while writing .*model.pt"):
        save_checkpoint(
            target, [{"seed": 0, "epoch": 1, "val_acc": 0.5, "state_dict": ConvNet().state_dict()}], "v"
        )
    assert list(tmp_path.iterdir()) == []


def test_a_write_failing_for_space_inside_a_folder_names_the_folder(tmp_path: Path, full_disk: None) -> None:
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "stats.json").write_text("old")
    with pytest.raises(WriteError, match=f"^no space left on device while writing {target}$"):  # noqa: PT012
        with atomic_directory(target) as tmp:
            write_bytes(tmp / "train.npz", b"x" * 100_000)
    assert [p.name for p in target.iterdir()] == ["stats.json"]
    assert (target / "stats.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]


def test_other_write_errors_say_their_own_reason(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    with pytest.raises(WriteError, match=f"^input/output error while writing {target}$"), atomic_open(target):
        raise OSError(errno.EIO, "Input/output error")
    assert list(tmp_path.iterdir()) == []


def test_a_bug_inside_a_write_is_not_taken_for_a_write_error(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), atomic_open(tmp_path / "m.json"):
        raise ZeroDivisionError
    assert list(tmp_path.iterdir()) == []


# --- what the system refuses, checked before a stage works ---------------------------------------


@pytest.fixture
def read_only(tmp_path: Path) -> Path:
    folder = tmp_path / "outputs"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores permissions: nothing to test
        folder.chmod(0o755)
        pytest.skip("running as a user that ignores file permissions")
    yield folder
    folder.chmod(0o755)


def test_a_folder_that_refuses_writes_is_one_write_error(read_only: Path) -> None:
    with pytest.raises(WriteError, match=f"^permission denied while writing {read_only / 'm.json'}$"):
        write_json(read_only / "m.json", {"a": 1})
    with pytest.raises(WriteError, match="^permission denied while writing"):
        check_writable([read_only / "sub" / "model.pt"])


@pytest.mark.parametrize(
    ("make", "target", "reason"),
    [
        (
            lambda root: (root / "models").write_text("a file"),
            "models/baseline.pt",
            "a file stands where a folder",
        ),
        (
            lambda root: (root / "models" / "baseline.pt").mkdir(parents=True),
            "models/baseline.pt",
            "a folder stands",
        ),
    ],
    ids=["file-for-folder", "folder-for-file"],
)
def test_check_writable_finds_what_would_fail_after_the_work(
    tmp_path: Path, make, target: str, reason: str
) -> None:
    make(tmp_path)
    with pytest.raises(WriteError, match=f"^{reason}.* while writing {tmp_path / target}$"):
        check_writable([tmp_path / target])
    with pytest.raises(WriteError, match=f"^{reason}"):
        write_bytes(tmp_path / target, b"x")


def test_check_writable_leaves_nothing_behind(tmp_path: Path) -> None:
    check_writable([tmp_path / "a" / "b.json", tmp_path / "c.csv"])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a"]


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


@pytest.mark.parametrize(
    "name", ["params.yaml", "src/convlab/atomic.py", "metrics/test_baseline.json", "plots/x.csv"]
)
def test_git_does_not_ignore_project_files(name: str) -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", name], cwd=PROJECT, capture_output=True, check=False
    )
    assert result.returncode == 1


REAL_DISK_SCRIPT = """
import sys
from pathlib import Path
from convlab.atomic import WriteError, write_text
from convlab.checkpoint import save_checkpoint
from convlab.model import ConvNet

folder = Path(sys.argv[1])
run = {"seed": 0, "epoch": 1, "val_acc": 0.5, "state_dict": ConvNet().state_dict()}
for write in (
    lambda: save_checkpoint(folder / "baseline.pt", [run], "v"),
    lambda: write_text(folder / "test.json", "0" * 1_000_000),
):
    try:
        write()
    except WriteError as err:
        print(err)
print(sorted((p.name, p.read_text()) for p in folder.iterdir()))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "reason"),
    [("size=256k", "no space left on device"), ("size=256k,ro", "read-only file system")],
    ids=["full", "read-only"],
)
def test_a_real_file_system_that_refuses(tmp_path: Path, options: str, reason: str) -> None:
    """A 256 KiB tmpfs (full once written) or a read-only one, in a private mount namespace, where
    unshare and mount are allowed: each write is one WriteError, the old files stay, no temp."""
    disk = tmp_path / "disk"
    disk.mkdir()
    old = "old"
    prepare = (
        f'echo {old} > "$0/baseline.pt" && echo {old} > "$0/test.json" && mount -o remount,{options} "$0"'
    )
    mount = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        f'mount -t tmpfs tmpfs "$0" && {prepare}',
    ]
    try:
        probe = subprocess.run([*mount, str(disk)], capture_output=True, check=False)
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    mount[-1] += ' && exec "$1" -c "$2" "$0"'
    result = subprocess.run(
        [*mount, str(disk), sys.executable, REAL_DISK_SCRIPT], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{reason} while writing {disk / 'baseline.pt'}",
        f"{reason} while writing {disk / 'test.json'}",
        "[('baseline.pt', 'old\\n'), ('test.json', 'old\\n')]",
    ]
