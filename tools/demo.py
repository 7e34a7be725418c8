"""See the whole pipeline work in about a minute, before committing hours to the real study.

    python tools/demo.py [--dir demo]

Clones this repository's HEAD into DIR (git-ignored here), writes a small synthetic archive in the
official CIFAR-10 format there (1,000 training and 300 test images of ten learnable patterns: the
tests' archive), points the params at it with 2 epochs and one seed per variant, and runs in the
clone: `dvc repro` (every stage: download, split, three trainings, three evaluations, the report),
`dvc exp run -S dropout.fc=0.3` (only the dropout variant re-trains), `dvc exp show`, and the head
of the report. No network, no real data; the numbers are the synthetic patterns', not CIFAR-10's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ruamel.yaml import YAML

from convlab.cifar import file_md5
from convlab.errors import ConvlabError, run_main
from convlab.outputs import REPORT
from convlab.params import load_params
from convlab.synthetic import write_archive

PROJECT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "data": {"val_size": 200},
    "train": {"seeds": 1, "lr": 0.01, "log_every": 10, "eval_batch_size": 250},
}


class DemoError(ConvlabError):
    """The demo folder cannot be made, or a command in it failed."""


def step(title: str, command: list[str], cwd: Path, env: dict[str, str]) -> None:
    print(f"\n$ {title}", flush=True)
    started = time.perf_counter()
    if subprocess.run(command, cwd=cwd, env=env, check=False).returncode != 0:
        raise DemoError(f"`{title}` failed in {cwd} (its output is above)")
    print(f"({time.perf_counter() - started:.0f} s)", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dir", type=Path, default=PROJECT / "demo", help="where to make the demo (default: demo/)"
    )
    args = parser.parse_args(argv)
    demo = args.dir.resolve()
    if demo.exists():
        if not (demo / ".convlab-demo").exists():
            raise DemoError(f"{demo} exists and is not a demo this tool made: name another with --dir")
        shutil.rmtree(demo)
    started = time.perf_counter()
    if subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        raise DemoError(f"{PROJECT} is not a git clone with a commit: the demo clones its HEAD")
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(demo)], check=True)
    (demo / ".convlab-demo").write_text("made by tools/demo.py\n")
    archive = write_archive(demo / "synthetic/cifar-10-python.tar.gz", per_batch=200, test_size=300)
    with (demo / ".git/info/exclude").open("a") as exclude:
        exclude.write("/synthetic/\n/.convlab-demo\n")

    yaml = YAML()  # round trip: params.yaml keeps its comments
    params = yaml.load(demo / "params.yaml")
    for section, values in SETTINGS.items():
        params[section].update(values)
    for variant in load_params(demo / "params.yaml").variants:
        params[variant]["epochs"] = 2
    params["data"].update(url=archive.as_uri(), md5=file_md5(archive))
    yaml.dump(params, demo / "params.yaml")
    git = ["git", "-c", "user.name=demo", "-c", "user.email=demo@example.org"]
    commit = [*git, "commit", "-qam"]
    subprocess.run([*commit, "demo: synthetic archive, 2 epochs, 1 seed"], cwd=demo, check=True)

    # The clone's own code runs its stages, with the dvc of this Python.
    env = {**os.environ, "PYTHONPATH": "src", "DVC_NO_ANALYTICS": "1"}
    env.pop("CIFAR10_URL", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    dvc = [sys.executable, "-m", "dvc"]
    step("dvc repro", [*dvc, "repro"], demo, env)
    subprocess.run(["git", "add", "-A"], cwd=demo, check=True)
    step("git add -A && git commit -m 'demo results'", [*commit, "demo results"], demo, env)
    step("dvc exp run -S dropout.fc=0.3", [*dvc, "exp", "run", "-S", "dropout.fc=0.3"], demo, env)
    step("dvc exp show --only-changed", [*dvc, "exp", "show", "--only-changed"], demo, env)
    print(f"\n$ head -n 12 {REPORT}")
    print("\n".join((demo / REPORT).read_text().splitlines()[:12]))
    print(
        f"\ndemo: the whole pipeline in {time.perf_counter() - started:.0f} s, in {demo} "
        f"(report: {demo / REPORT}; try `cd {demo.name} && dvc plots show`)"
    )


if __name__ == "__main__":
    run_main("demo", main)
