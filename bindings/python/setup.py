"""Bundles the repository's liblathe.so into the installed package (see README.md, "Installing").

Everything else is declared in pyproject.toml. The library copied is LATHE_LIBRARY if set, else
../../.build/release/liblathe.so, else ../../.build/debug/liblathe.so; editable installs copy
nothing, since the package then finds the repository's build by itself.
"""

import os
import shutil
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent.parent


def built_library():
    """The liblathe.so to bundle, or None."""
    candidates = [os.environ.get("LATHE_LIBRARY")] + [
        REPOSITORY / ".build" / config / "liblathe.so" for config in ("release", "debug")
    ]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


class BuildPyWithLibrary(build_py):
    """build_py that also copies liblathe.so next to the package's modules."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        library = built_library()
        if library is None:
            self.warn("no liblathe.so found to bundle: the installed package will need LATHE_LIBRARY "
                      "or a system-wide liblathe.so")
            return
        target = Path(self.build_lib) / "lathe" / "liblathe.so"
        self.announce(f"bundling {library} as {target}", level=2)
        shutil.copyfile(library, target)


class LibraryDistribution(Distribution):
    """Marks the wheel as platform-specific when it carries liblathe.so."""

    def has_ext_modules(self):
        return built_library() is not None


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=LibraryDistribution)
