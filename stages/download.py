"""Stage download: fetch data.url (or $CIFAR10_URL) to data/raw, accepted only if it is CIFAR-10."""

from __future__ import annotations

import os

from convlab.download import download
from convlab.errors import run_stage
from convlab.params import load_params
from convlab.stage_files import ARCHIVE


def main(argv: list[str]) -> None:
    params = load_params().data
    # A mirror or a local copy: the checksums make the result the same data either way.
    url = os.environ.get("CIFAR10_URL") or params.url
    print(f"download: {url!r} -> {ARCHIVE}", flush=True)  # repr: a control character shows, not acts
    verified = download(url, ARCHIVE, params.md5, params.content_sha256)
    how = "its md5" if verified.matched == "md5" else "its content checksum (a repacked copy)"
    print(f"download: accepted by {how}; md5 {verified.md5}")


if __name__ == "__main__":
    run_stage("download", main)
