"""Built-in cryo-EM micrograph simulator (numpy/scipy only).

Used by the demo, the tests and the benchmarks.  It aims to be realistic enough that a
simple blob picker does not trivially win, while staying fast (a 512x512 micrograph with
~60 particles takes a few tens of milliseconds on one CPU core).

Model
-----
* **Particles.**  ``n_shapes`` 3D density templates are drawn once per simulation (shared
  by all its micrographs, like the species in one sample).  Each template is a sum of 3D
  Gaussian blobs inside an envelope: *globular*, *elongated* or *multi-lobed*, with a
  radius jittered by ``size_jitter`` around ``diameter / 2``.  A template's total mass
  scales with radius**3 and a nominal particle (radius ``diameter / 2``) has a mean
  projected density of about 1 over its disk.  Each particle instance gets its own
  orientation, uniform on SO(3): the blob centres are rotated and each blob is splatted
  as an analytic 2D Gaussian (the exact projection of a 3D Gaussian), which is much
  faster than rotating a voxel volume.  A particle's label is the projection of its
  centre of mass.
* **Placement.**  Random sequential placement with a minimum centre distance of
  ``min_separation * diameter`` between particles, at least ``diameter / 2`` from the
  image border, clear of contaminants and of the carbon region.
* **Image formation.**  The projected density (particles, contaminants, carbon) is
  filtered by the CTF (:func:`ctf_2d`); the particle part alone defines the signal
  variance, measured over the particle disks; white Gaussian noise of variance
  ``signal_var / snr`` is added (shot noise approximation), then a slow ice-thickness
  field, then the micrograph is normalised to mean 0, std 1 (float32).

Conventions
-----------
* Coordinates are in pixels, ``(x, y)`` = ``(column, row)``, 0-based, with integer values
  at pixel centres: pixel ``image[i, j]`` has centre ``(x=j, y=i)``.  The STAR files
  written by :func:`save_simulation` carry the same numbers.
* Sign / contrast: positive density times a CTF that equals ``-amplitude_contrast`` at
  zero frequency (and is negative over the whole first lobe for underfocus), so
  **particles are darker than the surrounding ice** in the low-pass filtered image, as
  in typical cryo-EM micrographs.
* Defocus is positive for underfocus, in micrometres.
* Carbon (``carbon_edge=True``): the micrograph is at the edge of a hole in a holey
  carbon film; the carbon (outside a large circle, covering ~15-35 % of the image on a
  random side) is thicker, so darker, with its own texture and Fresnel fringes at the
  edge.  **No particle is placed on the carbon**: a pick there is a false positive.
* Contaminants (ice crystals, aggregates) are larger (1.5-4 particle diameters),
  irregular, of higher density (so higher contrast) and never labelled.

Modules
-------
:mod:`.config` (options, one micrograph's truth), :mod:`.particles` (templates, poses,
placement), :mod:`.obstacles` (carbon, contaminants), :mod:`.optics` (CTF), :mod:`.noise`
(smooth fields), :mod:`.micrograph` (image formation), :mod:`.visibility`,
:mod:`.dataset` (writing a data set).  The public names are all importable from here.
"""

from .config import SimulatedMicrograph, SimulationConfig
from .dataset import save_simulation
from .micrograph import simulate, simulate_micrograph
from .optics import ctf_2d, electron_wavelength
from .particles import Template, make_templates
from .visibility import particle_visibility

__all__ = [
    "SimulationConfig",
    "SimulatedMicrograph",
    "Template",
    "ctf_2d",
    "electron_wavelength",
    "make_templates",
    "particle_visibility",
    "simulate",
    "simulate_micrograph",
    "save_simulation",
]
