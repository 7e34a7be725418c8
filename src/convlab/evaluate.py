"""Loss, accuracy and predictions of a model on a split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from convlab.batches import DeviceImages


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    predictions: np.ndarray  # (N,) predicted class per image


@torch.inference_mode()
def evaluate(model: nn.Module, images: DeviceImages, batch_size: int) -> Evaluation:
    """Mean cross-entropy and accuracy in fp32, in large batches, with dropout off.

    Evaluation stays fp32 even when training runs in bf16, so reported accuracy is the model's
    own and not the rounding's; it is a small share of the time either way.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=images.x.device)
    predictions = []
    for start in range(0, len(images), batch_size):
        x, y = images.batch(slice(start, start + batch_size))
        logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        predictions.append(logits.argmax(dim=1))
    model.train(was_training)
    predicted = torch.cat(predictions)
    accuracy = (predicted == images.y).double().mean().item()
    return Evaluation(loss_sum.item() / len(images), accuracy, predicted.cpu().numpy())
