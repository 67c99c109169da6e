"""Microscope optics: the electron wavelength and the contrast transfer function."""

from __future__ import annotations

import math

import numpy as np

from cryopick.errors import InputError


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV."""
    v = voltage_kv * 1e3
    return 12.2643 / math.sqrt(v * (1.0 + 0.978466e-6 * v))


def ctf_2d(
    shape: tuple[int, int],
    pixel_size: float,
    defocus_u_um: float,
    defocus_v_um: float,
    astig_angle: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    bfactor: float = 50.0,
    half: bool = False,
) -> np.ndarray:
    """Contrast transfer function sampled on an FFT grid.

    ``CTF(k) = -(sqrt(1 - A^2) sin(chi) + A cos(chi)) * exp(-B |k|^2 / 4)`` with
    ``chi = pi lambda df(theta) |k|^2 - pi/2 Cs lambda^3 |k|^4`` and the astigmatic
    defocus ``df(theta) = (du + dv)/2 + (du - dv)/2 cos(2 (theta - astig_angle))``.

    So ``CTF(0) = -amplitude_contrast``, ``|CTF| <= 1`` and the first lobe is negative
    for underfocus (positive defocus): positive density images dark.

    Args:
        shape: ``(H, W)`` of the real-space image.
        pixel_size: Å/px.
        defocus_u_um, defocus_v_um: defocus (µm, underfocus positive) along the direction
            ``astig_angle`` and perpendicular to it.
        astig_angle: radians, from the x (column) axis towards y (rows).
        voltage_kv, cs_mm, amplitude_contrast: microscope parameters.
        bfactor: Å^2, envelope ``exp(-B k^2 / 4)`` (0 disables).
        half: return the ``(H, W//2 + 1)`` half-plane of ``numpy.fft.rfft2`` instead of the
            full ``(H, W)`` plane of ``numpy.fft.fft2`` (both unshifted, DC at ``[0, 0]``).

    Returns:
        float64 array of the CTF values.
    """
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise InputError(f"ctf_2d: shape {shape!r} must be two positive sizes")
    if not pixel_size > 0:
        raise InputError(f"ctf_2d: pixel_size={pixel_size!r} must be > 0")
    if not 0 <= amplitude_contrast < 1:
        raise InputError(f"ctf_2d: amplitude_contrast={amplitude_contrast!r} must be in [0, 1)")
    if bfactor < 0:
        raise InputError(f"ctf_2d: bfactor={bfactor!r} must be >= 0")
    lam = electron_wavelength(voltage_kv)  # Å
    ky = np.fft.fftfreq(h, d=pixel_size)[:, None]  # Å^-1
    kx = (np.fft.rfftfreq(w, d=pixel_size) if half else np.fft.fftfreq(w, d=pixel_size))[None, :]
    k2 = kx * kx + ky * ky
    theta = np.arctan2(ky, kx)
    du, dv = defocus_u_um * 1e4, defocus_v_um * 1e4  # Å
    df = 0.5 * (du + dv) + 0.5 * (du - dv) * np.cos(2.0 * (theta - astig_angle))
    cs = cs_mm * 1e7  # Å
    chi = math.pi * lam * df * k2 - 0.5 * math.pi * cs * lam**3 * k2 * k2
    a = amplitude_contrast
    ctf = -(math.sqrt(1.0 - a * a) * np.sin(chi) + a * np.cos(chi))
    if bfactor:
        ctf = ctf * np.exp(-0.25 * bfactor * k2)
    return ctf
