"""Make ``import torchvision`` work when its compiled ops cannot load.

Installed into the Topaz venv only (by ``setup_topaz.sh``), never into cryopick.

Why: the only CPU build of torch this project installs is ``torch==2.13.0+cpu``
(a local wheel).  The matching ``torchvision==0.28.0`` wheel on PyPI is built
against the CUDA torch, so ``torchvision/_C.so`` links ``libc10_cuda.so`` /
``libtorch_cuda.so`` and fails to load.  torchvision tolerates that in
``torchvision.extension`` (``_has_ops()`` becomes False), but
``torchvision._meta_registrations`` then calls
``torch.library.register_fake("torchvision::nms")`` unconditionally, which
raises ``RuntimeError: operator torchvision::nms does not exist`` and aborts
``import torchvision``.

Fix: a tiny import hook.  When (and only when) ``torchvision._meta_registrations``
is imported while the C ops are *not* loaded, it is replaced by an empty module.
That module only registers fake/meta kernels (used by torch.compile / FakeTensor)
for the C++ ops (nms, roi_align, ...) -- ops that do not exist here anyway.  The
pure-Python parts Topaz uses (``torchvision.transforms.functional.rotate``,
``hflip``, ``vflip``) are unaffected.  If a torchvision whose ops do load is
installed later, the hook steps aside and the real module is imported.

The hook is activated by a one-line ``.pth`` file in the venv's site-packages
(``import torchvision_cpu_shim``); installing it imports nothing heavy (no torch).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

_TARGET = "torchvision._meta_registrations"


class _EmptyLoader(importlib.abc.Loader):
    def create_module(self, spec):  # default module creation
        return None

    def exec_module(self, module):
        module.__doc__ = (
            "Stub installed by torchvision_cpu_shim: torchvision's C ops are not "
            "loadable against this CPU torch, so no meta kernels are registered."
        )


class _TorchvisionMetaStubFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET:
            return None
        ext = sys.modules.get("torchvision.extension")
        try:
            has_ops = bool(ext is not None and ext._has_ops())
        except Exception:  # pragma: no cover - defensive
            has_ops = False
        if has_ops:
            return None  # real ops are there: import the real module
        return importlib.machinery.ModuleSpec(fullname, _EmptyLoader())


def install() -> None:
    if not any(isinstance(f, _TorchvisionMetaStubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionMetaStubFinder())


install()
