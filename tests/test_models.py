"""Models from a team's remote and resume state: loaded without running code, into the ConvNet
strictly, only as the variant and seeds asked for; damaged resume state starts its run over."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from convlab import checkpoint
from convlab.checkpoint import CheckpointError, load_models, load_resume, save_models, save_resume
from convlab.model import ConvNet

CPU = torch.device("cpu")


def runs(*seeds: int) -> list[dict]:
    return [{"seed": s, "epoch": 1, "val_acc": 0.5, "state_dict": ConvNet().state_dict()} for s in seeds]


def test_a_checkpoint_loads_as_the_variant_and_seeds_asked_for(tmp_path: Path) -> None:
    save_models(tmp_path / "dropout.pt", "dropout", runs(0, 1))
    models = load_models(tmp_path / "dropout.pt", "dropout", [0, 1], CPU)
    assert [facts["seed"] for _, facts in models] == [0, 1] and isinstance(models[0][0], ConvNet)
    with pytest.raises(
        CheckpointError, match=r"holds 'dropout''s models, not 'baseline''s; run `dvc repro train_baseline`"
    ):
        load_models(tmp_path / "dropout.pt", "baseline", [0, 1], CPU)
    with pytest.raises(CheckpointError, match=r"holds the runs of seeds \[0, 1\], not of \[0, 1, 2\]"):
        load_models(tmp_path / "dropout.pt", "dropout", [0, 1, 2], CPU)


class RunsCode:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch pwned",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"variant": "baseline", "runs": [RunsCode()]}, tmp_path / "baseline.pt", pickle_module=pickle)
    with pytest.raises(CheckpointError, match="is not a convlab checkpoint"):
        load_models(tmp_path / "baseline.pt", "baseline", [0], CPU)
    assert not (tmp_path / "pwned").exists()


def test_weights_of_another_shape_are_refused(tmp_path: Path) -> None:
    state = {**ConvNet().state_dict(), "fc2.weight": torch.zeros(3, 512)}
    save_models(
        tmp_path / "baseline.pt", "baseline", [{"seed": 0, "epoch": 1, "val_acc": 0.5, "state_dict": state}]
    )
    with pytest.raises(CheckpointError, match=r"is not a convlab checkpoint \(RuntimeError\)"):
        load_models(tmp_path / "baseline.pt", "baseline", [0], CPU)


def test_a_checkpoint_that_would_inflate_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "MAX_CHECKPOINT_BYTES", 1 << 20)
    with zipfile.ZipFile(tmp_path / "baseline.pt", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("archive/data/0", bytes(4 << 20))
    with pytest.raises(CheckpointError, match="would unpack to 4,194,304 bytes"):
        load_models(tmp_path / "baseline.pt", "baseline", [0], CPU)


def test_damaged_resume_state_starts_the_run_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.pt"
    save_resume(path, {"epoch": 3, "weights": torch.ones(4)})
    assert load_resume(path)["epoch"] == 3
    data = bytearray(path.read_bytes())
    data[-10] ^= 1
    path.write_bytes(bytes(data))
    assert load_resume(path) is None and not path.exists()
    assert capsys.readouterr().out == f"resume: {path} is damaged: this run starts over\n"
