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


def test_pip_and_the_build_backend_are_the_pinned_ones():
    # `-c` reaches neither pip itself nor the isolated environment pip builds the project in: the
    # Makefile upgrades pip to its pin and passes `--build-constraint`, and the wheel's own record
    # names the setuptools that built it.
    import tomllib

    pinned = pins()
    build_requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for text in build_requires:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"constraints.txt has no pin for the build requirement {text}: run `make lock`"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]} outside {text}"
    # The installed dist-info, not the egg-info the editable build leaves beside setup.py.
    wheels = [dist.read_text("WHEEL") for dist in metadata.distributions(name="ml_assets")]
    assert f"Generator: setuptools ({pinned['setuptools']})" in "".join(filter(None, wheels)), wheels
    assert metadata.version("pip") == pinned["pip"]
