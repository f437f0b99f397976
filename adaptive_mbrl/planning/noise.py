"""Coloured (power-law) Gaussian noise along the planning horizon, for iCEM."""
from __future__ import annotations

import torch
from torch import Tensor


def powerlaw_scales(length: int, beta: float, device: torch.device | str | None = None) -> tuple[Tensor, float]:
    """Amplitude per rFFT frequency (``~ f^(-beta/2)``) and the resulting per-step standard deviation.

    The zero frequency gets the amplitude of the lowest non-zero one (``f = 1 / length``).

    Returns:
        scales ``[length // 2 + 1]`` and the standard deviation that ``irfft`` of standard complex normal
        coefficients times ``scales`` has at every time step (used to normalise to unit variance).
    """
    freqs = torch.fft.rfftfreq(length, device=device, dtype=torch.float64)
    freqs[0] = 1.0 / length
    scales = freqs.pow(-beta / 2.0)
    # x_t = (1/n) [X_0 + 2 sum_k Re(X_k e^{i w t}) (+ X_{n/2} (-1)^t for even n)], X_0 and X_{n/2} real.
    var = scales[0] ** 2
    last = len(scales) - 1
    if length % 2 == 0 and last > 0:
        var = var + scales[last] ** 2 + 4.0 * scales[1:last].square().sum()
    else:
        var = var + 4.0 * scales[1:].square().sum()
    return scales, float(var.sqrt()) / length


def colored_noise(shape: tuple[int, ...], beta: float, generator: torch.Generator,
                  device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Unit-variance Gaussian noise, coloured along axis ``-2`` (time), independent along the rest.

    Args:
        shape: ``[..., H, a]``; the noise is correlated over the ``H`` axis only.
        beta: spectral exponent (0 = white, 1 = pink, 2 = brown).
        generator: on ``device``.

    Returns:
        ``[..., H, a]`` with zero mean and unit variance per entry.
    """
    *lead, length, dims = shape
    if beta == 0.0 or length == 1:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    scales, std = powerlaw_scales(length, beta, device)
    n_freq = scales.shape[0]
    coeff = torch.randn((*lead, dims, n_freq, 2), generator=generator, device=device, dtype=torch.float32)
    coeff[..., 0, 1] = 0.0  # the zero frequency is real
    if length % 2 == 0:
        coeff[..., -1, 1] = 0.0  # so is the Nyquist frequency
    spectrum = torch.view_as_complex(coeff) * (scales / std).to(torch.float32)
    signal = torch.fft.irfft(spectrum, n=length, dim=-1)  # [..., a, H]
    return signal.transpose(-1, -2).to(dtype)
