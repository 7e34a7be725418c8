"""convlab: the library behind the study's stages (README.md; stages/ call it, dvc.yaml runs them).
A regular package, not a namespace one, so the first `src` on the path wins whole: each stage runs
its own checkout's code (dvc.yaml runs them with PYTHONPATH=src), not that of the checkout pip
installed."""
