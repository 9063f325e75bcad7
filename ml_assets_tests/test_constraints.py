"""constraints.txt pins what setup.py's ranges resolve to; a dependency added without `make lock`
would install at whatever version is newest that day, in CI and in the image alike."""

from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ml_assets_tests.integration.servers import REPO

EXTRAS = ("test", "bench", "production")


def pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    entries = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in entries}


def requirements(dist: str, extras: tuple[str, ...] = ()) -> list[Requirement]:
    wanted = []
    for text in metadata.requires(dist) or []:
        requirement = Requirement(text)
        if requirement.marker is None or any(
            requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras)
        ):
            wanted.append(requirement)
    return wanted


def test_every_requirement_of_the_project_is_pinned_within_its_range():
    pinned = pins()
    for requirement in requirements("ml_assets", EXTRAS):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"constraints.txt has no pin for {requirement}: run `make lock`"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside setup.py's {requirement}: run `make lock`"
        )


def test_the_installed_environment_is_the_pinned_one():
    # Everything the test install pulls in, transitively, at exactly its pinned version.
    pinned = pins()
    seen: set[str] = set()
    queue = requirements("ml_assets", ("test",))
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        installed = metadata.version(requirement.name)
        assert pinned.get(name) == installed, (
            f"{name} {installed} installed, constraints.txt: {pinned.get(name)}"
        )
        queue.extend(requirements(requirement.name, tuple(requirement.extras)))
    assert len(seen) > 100
