"""The study's ConvNet: two conv blocks and a two-layer classifier, dropout at three places."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from convlab.dropout import Dropout


class ConvNet(nn.Module):
    """conv(3->32) conv(32->32) pool, conv(32->64) conv(64->64) pool, fc(1600->512) fc(512->10).

    Padding 0 and stride 1 everywhere, so a 32x32 image shrinks 32->30->28->14->12->10->5 and the
    classifier sees 64 * 5 * 5 = 1600 features. Dropout rates of 0 leave the layer out entirely,
    which keeps the no-dropout variant free of any RNG draws; the others use convlab.dropout,
    nn.Dropout's distribution with masks that are cheap on the CPU.
    """

    def __init__(self, pool1: float = 0.0, pool2: float = 0.0, fc: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.conv2 = nn.Conv2d(32, 32, 3)
        self.conv3 = nn.Conv2d(32, 64, 3)
        self.conv4 = nn.Conv2d(64, 64, 3)
        self.fc1 = nn.Linear(64 * 5 * 5, 512)
        self.fc2 = nn.Linear(512, 10)
        self.drop_pool1 = Dropout(pool1) if pool1 > 0 else nn.Identity()
        self.drop_pool2 = Dropout(pool2) if pool2 > 0 else nn.Identity()
        self.drop_fc = Dropout(fc) if fc > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.drop_pool1(F.max_pool2d(x, 2))
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = self.drop_pool2(F.max_pool2d(x, 2))
        x = torch.flatten(x, 1)
        x = self.drop_fc(F.relu(self.fc1(x)))
        return self.fc2(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
