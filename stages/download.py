"""Stage download: fetch data.url (or $CIFAR10_URL, a mirror or a copy on disk) to data/raw,
accepted only when it is the CIFAR-10 archive params.yaml names by checksum."""

from __future__ import annotations

import os

from convlab.download import download, shown_url
from convlab.errors import run_main
from convlab.outputs import ARCHIVE
from convlab.params import load_params


def main(argv: list[str]) -> None:
    data = load_params().data
    url = os.environ.get("CIFAR10_URL") or data.url
    print(f"download: {shown_url(url)!r} -> {ARCHIVE}", flush=True)
    how = download(url, ARCHIVE, data.md5, data.content_sha256)
    print(f"download: accepted by {'its md5' if how == 'md5' else 'its content checksum (a repacked copy)'}")


if __name__ == "__main__":
    run_main("download", main)
