"""``tornrouter init [DIR]``: the example configs that ship in the package,
written out for a user who installed it with pip and has no checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# The package's ``conf/`` is the repository's: ``dev.yaml`` serves offline, ``prod.yaml`` is a starting point.
EXAMPLES = ("dev.yaml", "prod.yaml")


class AlreadyThere(Exception):
    """A config of that name exists: ``init`` never overwrites one unasked."""


def write_examples(directory: Path, force: bool = False) -> list[Path]:
    """Write the example configs into ``directory`` (made if missing) and return
    their paths.  Raises ``AlreadyThere`` (having written nothing) if one exists,
    unless ``force``."""
    targets = [directory / name for name in EXAMPLES]
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        raise AlreadyThere(", ".join(str(path) for path in existing))
    directory.mkdir(parents=True, exist_ok=True)
    shipped = resources.files("tornrouter").joinpath("conf")
    for name, path in zip(EXAMPLES, targets):
        path.write_bytes(shipped.joinpath(name).read_bytes())
    return targets
