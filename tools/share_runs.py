"""Push DVC's run cache together with the files of every recorded run, so that a teammate's
`dvc repro --pull` restores any of those runs instead of training it again.

    python tools/share_runs.py [-r REMOTE]

`dvc push --run-cache` sends the record of every stage run (.dvc/cache/runs), but of the files
those runs made it sends only the ones the workspace's dvc.lock names, and never the git-tracked
metrics and plots, which DVC's run cache keeps copies of too. A record whose files are not on the
remote cannot be restored, so the teammate trains again (DVC 3.67; treeverse/dvc#10472: run-cache
push moves "nothing except the runs files"). This pushes the records as DVC does, then every file
that any record names and this cache holds.
"""

from __future__ import annotations

import argparse
import os

from dvc.repo import Repo


def recorded_runs(repo: Repo) -> list[tuple[str, str]]:
    """(key, value) of every run record in the local run cache: runs/<k[:2]>/<key>/<value>."""
    records = []
    for folder, _, files in os.walk(repo.stage_cache.cache_dir):
        records += [(os.path.basename(folder), name) for name in files]
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-r", "--remote", help="DVC remote (default: the project's default remote)")
    args = parser.parse_args()
    with Repo(".") as repo:
        pushed = repo.push(remote=args.remote, run_cache=True)
        files = 0
        for objs in repo.stage_cache.get_used_objs(recorded_runs(repo)).values():
            result = repo.cloud.push(objs, remote=args.remote)
            files += len(result.transferred)
            if result.failed:
                raise SystemExit(f"share_runs: error: {len(result.failed)} file(s) could not be pushed")
    print(f"share_runs: {pushed} records and workspace files pushed, then {files} files of recorded runs")


if __name__ == "__main__":
    main()
