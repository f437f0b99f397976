"""Where and on how many threads torch computes: a device checked before anything is loaded onto it, and
the intra-op thread count a controller sets when it is built.

::

    from adaptive_mbrl.devices import resolve_device, set_threads
    device = resolve_device("cuda:0")   # ValueError naming the allowed forms, or what is missing
    set_threads(1)                      # torch.set_num_threads(1), validated

Thread count: a controller plans with many small tensor operations, where torch's intra-op threads
cost more in synchronisation than they gain, and a thread that waits for a core taken by another process
stalls every operation. The shipped ``mb_de`` controller on a 2-core machine ran at 14.5 control steps
per second with 1 thread and at 1.5 with torch's default of 2 while the other core was busy; on the
same (shared, loaded) machine ``benchmarks/control_rate.py --preset mb_de --steps 10 --threads 1 2``
measured 4.6 Hz (1 thread) vs 0.9 Hz (2 threads) without and 2.5 vs 0.2 Hz with one more busy-loop
process: indicative ratios, 1 thread was faster in every case. Hence :data:`DEFAULT_THREADS` = 1.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the functions, so that importing this module stays light
    import torch

DEVICE_FORMS = "'cpu', 'cuda', 'cuda:<index>', 'mps' (or a torch.device)"
DEFAULT_THREADS = 1
"""Intra-op threads a controller sets when it is built (see the module docstring)."""


def resolve_device(device: "str | torch.device | None") -> "torch.device":
    """The torch device ``device`` names, checked to exist on this machine.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:<index>"``, ``"mps"``, a ``torch.device``, or None (cpu).

    Raises:
        ValueError: not a device name (e.g. ``"banana"``), CUDA / MPS asked for where it is not available,
            or a CUDA index beyond the devices present. The message names the allowed forms.
    """
    import torch

    if device is None:
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"device {device!r} is not a torch device; allowed: {DEVICE_FORMS}") from err
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} asks for CUDA, but torch.cuda.is_available() is False on "
                             f"this machine (no GPU, driver or CUDA build of torch); use device 'cpu'")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {str(device)!r}: this machine has {count} CUDA device(s); allowed: 'cuda', "
                             + ", ".join(f"'cuda:{i}'" for i in range(count)) + ", 'cpu'")
        return resolved
    if resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {str(device)!r} asks for Apple MPS, which is not available on this machine; "
                             "use device 'cpu'")
        return resolved
    raise ValueError(f"device {str(device)!r} (type {resolved.type!r}) is not supported; allowed: {DEVICE_FORMS}")


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)``; None leaves torch's current setting.

    The setting is process-wide: the latest controller built decides it for all of them.

    Raises:
        ValueError: ``threads`` is not a positive integer.
    """
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None (torch's setting), got {threads!r}")
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
