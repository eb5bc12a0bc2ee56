"""U-MASK representation consistency regulariser (eq. 20).

L = L_rec + lambda_con * InfoNCE(F_short, F_long): the short-term and long-term factors of the
same user are a positive pair, those of the other users in the mini-batch are negatives.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def info_nce(f_short: Tensor, f_long: Tensor, temperature: float = 0.1) -> Tensor:
    """Symmetric InfoNCE over a batch (eq. 20). f_short, f_long: (B, d). Returns a scalar.

    With a batch of one user there are no negatives and the loss is 0.
    """
    if f_short.shape[0] < 2:
        return f_short.sum() * 0.0
    a = nn.functional.normalize(f_short, dim=-1)
    b = nn.functional.normalize(f_long, dim=-1)
    logits = a @ b.T / temperature                                   # (B, B)
    labels = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (nn.functional.cross_entropy(logits, labels)
                  + nn.functional.cross_entropy(logits.T, labels))  # eq. 20
