"""Per-dimension affine normalisation of vectors, stored with the model it belongs to."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class Normalizer(nn.Module):
    """Maps ``x`` to ``(x - mean) / std`` per dimension, and back.

    ``mean`` and ``std`` are buffers (shape ``[dim]``, same units as ``x``), so they are saved in the
    owning model's ``state_dict`` and follow ``.to(device)``. Before :meth:`fit` the map is the identity.

    Constant dimensions: a dimension whose standard deviation is below ``min_std`` gets ``std = 1``
    (its value passes through, only centred). Dividing by a tiny floor instead would turn the smallest
    later deviation of a "constant" input (a joint that never moved in the data) into a huge network input.

    Args:
        dim: length of the vectors.
        min_std: standard deviations below this count as constant (same units as ``x``).
        device: where the buffers live.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, dim: int, min_std: float = 1e-6, device: torch.device | str | None = None) -> None:
        super().__init__()
        if dim < 0:
            raise ValueError(f"dim must be >= 0, got {dim}")
        if not min_std > 0:
            raise ValueError(f"min_std must be > 0, got {min_std}")
        self.dim = dim
        self.min_std = float(min_std)
        self.register_buffer("mean", torch.zeros(dim, device=device))
        self.register_buffer("std", torch.ones(dim, device=device))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        """Set ``mean`` and ``std`` from samples ``x`` [N, dim] (any leading shape; all rows are pooled).

        Raises:
            ValueError: wrong trailing size, no rows, or non-finite values.
        """
        if x.shape[-1] != self.dim:
            raise ValueError(f"Normalizer.fit: expected [..., {self.dim}], got {list(x.shape)}")
        rows = x.reshape(-1, self.dim).to(device=self.mean.device, dtype=torch.float64)
        if rows.shape[0] == 0:
            raise ValueError("Normalizer.fit: no samples")
        if not torch.isfinite(rows).all():
            raise ValueError("Normalizer.fit: samples contain NaN or inf")
        mean = rows.mean(0)
        std = rows.std(0, unbiased=False) if rows.shape[0] > 1 else torch.zeros_like(mean)
        std = torch.where(std < self.min_std, torch.ones_like(std), std)
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))

    def normalize(self, x: Tensor) -> Tensor:
        """``(x - mean) / std``: [..., dim] raw units -> [..., dim] unitless."""
        return (x - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        """``x * std + mean``: [..., dim] unitless -> [..., dim] raw units."""
        return torch.addcmul(self.mean, x, self.std)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, min_std={self.min_std:g}"
