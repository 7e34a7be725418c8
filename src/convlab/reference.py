"""What the study being reproduced reported, and for which settings: its figure is shown beside a
variant only when the variant was trained that way."""

from __future__ import annotations

from convlab.params import TrainParams, VariantParams

# What the study being reproduced reported (validation / test accuracy), and the settings it
# reported them for: (epochs, pool1, pool2, fc). The figure is shown only for a variant trained
# that way, without augmentation, with the study's SGD (lr 1e-3, momentum 0.9, batch 32).
REFERENCE = {
    "baseline": ((20, 0.0, 0.0, 0.0), "val close to 70%"),
    "dropout": ((20, 0.1, 0.1, 0.1), "not reported"),
    "staged_dropout": ((40, 0.1, 0.2, 0.5), "val 77%, test 75%"),
}
STUDY_SGD = {"lr": 1e-3, "momentum": 0.9, "batch_size": 32}
NOT_THE_STUDYS = "none (not the study's settings)"


def reference_for(name: str, variant: VariantParams, train: TrainParams) -> str:
    """The reproduced study's figure for this variant, or a note that these settings are not the
    study's (so no figure of the study's applies)."""
    if name not in REFERENCE:
        return NOT_THE_STUDYS
    settings, figure = REFERENCE[name]
    sgd = {key: getattr(train, key) for key in STUDY_SGD}
    ours = (variant.epochs, variant.pool1, variant.pool2, variant.fc)
    same = ours == settings and not variant.augments and sgd == STUDY_SGD
    return figure if same else NOT_THE_STUDYS
