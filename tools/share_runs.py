"""Push DVC's run cache together with the files of every recorded run, so that a teammate's
`dvc repro --pull` restores any of those runs instead of training it again.

    python tools/share_runs.py [-r REMOTE]

`dvc push --run-cache` sends the record of every stage run (.dvc/cache/runs), but of the files
those runs made it sends only the ones the workspace's dvc.lock names, and never the git-tracked
metrics and plots, which DVC's run cache keeps copies of too. A record whose files are not on the
remote cannot be restored, so the teammate trains again (DVC 3.67; treeverse/dvc#10472: run-cache
push moves "nothing except the runs files"). This pushes the records as DVC does, then every file
that any record names and this cache holds.

A remote that is a folder is pushed to only where that folder exists: DVC would otherwise create
it, so a remote named for another machine's disk would quietly fill
a new folder beside the clone instead of failing.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from dvc.exceptions import DvcException, NotDvcRepoError
from dvc.repo import Repo

from convlab.errors import ConvlabError, run_main


class ShareError(ConvlabError):
    """A remote that cannot take the runs, or no DVC repository to take them from."""


def recorded_runs(repo: Repo) -> list[tuple[str, str]]:
    """(key, value) of every run record in the local run cache: runs/<k[:2]>/<key>/<value>."""
    records = []
    for folder, _, files in os.walk(repo.stage_cache.cache_dir):
        records += [(os.path.basename(folder), name) for name in files]
    return records


def checked_remote(repo: Repo, name: str | None) -> str:
    """The remote to push to, by name: the one asked for, or the default; ShareError unless it is
    configured and, where it is a folder, that folder exists."""
    remotes = repo.config.get("remote", {})
    name = name or repo.config.get("core", {}).get("remote")
    if not name:
        configured = ", ".join(remotes) or "none"
        raise ShareError(f"no default DVC remote: name one with -r (configured: {configured})")
    if name not in remotes:
        raise ShareError(f"no DVC remote {name!r} (configured: {', '.join(remotes) or 'none'})")
    url = remotes[name]["url"]
    scheme = urlsplit(url).scheme
    if scheme in ("", "file") and not Path(urlsplit(url).path if scheme else url).is_dir():
        raise ShareError(
            f"the DVC remote {name!r} is the folder {url}, which does not exist on this machine "
            "(another machine's disk? a new remote: make the folder first)"
        )
    return name


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-r", "--remote", help="DVC remote (default: the project's default remote)")
    args = parser.parse_args(argv)
    try:
        repo = Repo()
    except NotDvcRepoError:
        raise ShareError(f"{Path.cwd()} is not in a DVC repository: run this from the project") from None
    with repo:
        remote = checked_remote(repo, args.remote)
        logging.disable(logging.ERROR)  # DVC's own error lines: the one below says it once
        try:
            pushed = repo.push(remote=remote, run_cache=True)
            files = 0
            for objs in repo.stage_cache.get_used_objs(recorded_runs(repo)).values():
                result = repo.cloud.push(objs, remote=remote)
                files += len(result.transferred)
                if result.failed:
                    raise ShareError(f"{len(result.failed)} file(s) could not be pushed to {remote!r}")
        except (DvcException, OSError) as err:  # an unreachable or refusing remote
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            url = repo.config["remote"][remote]["url"]
            what = f"cannot push to the DVC remote {remote!r} ({url}): {first}; is it reachable?"
            raise ShareError(what) from None
    print(f"share_runs: {pushed} records and workspace files pushed, then {files} files of recorded runs")


if __name__ == "__main__":
    run_main("share_runs", main)
