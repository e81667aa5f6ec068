"""The layer's hashed requirements against the lock.

layers/common/requirements.txt is what `sam build` installs into the layer: every package pinned,
each with the hash of every distribution of its pin, so pip runs in --require-hashes mode and
refuses a file the registry did not publish. `make lock` generates it from requirements.in and the
lock (requirements-dev.txt, a pip freeze). These checks are offline: they compare the files with
each other and with the installed metadata of the venv the lock installed, and fail when one of
them was edited without `make lock` (or `make lock-layer`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
HASHED = ROOT / "layers/common/requirements.txt"
TOP_LEVEL = ROOT / "layers/common/requirements.in"
LOCK = ROOT / "requirements-dev.txt"
DEV_TOP_LEVEL = ROOT / "requirements-dev.in"

# The Lambda's environment (python3.13 on arm64), where the layer's markers are evaluated.
LAMBDA = {
    "implementation_name": "cpython",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "platform_python_implementation": "CPython",
    "python_version": "3.13",
    "python_full_version": "3.13.0",
}
# Lambda's Python runtime has these; the layer must not ship its own (it would shadow them).
RUNTIME = {canonicalize_name(n) for n in ("boto3", "botocore", "s3transfer")}


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: str
    hashes: tuple[str, ...]


def hashed_pins(text: str) -> dict[NormalizedName, Pin]:
    pins: dict[NormalizedName, Pin] = {}
    joined = re.sub(r"\\\n", " ", text)
    for raw in joined.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split(" --")
        requirement = Requirement(spec.strip())
        assert requirement.marker is None, f"{line}: a marker in the layer's file"
        [specifier] = requirement.specifier
        assert specifier.operator == "==", f"{spec}: not pinned with =="
        hashes = tuple(o.strip().removeprefix("hash=") for o in options if o.startswith("hash="))
        assert len(hashes) == len(options), f"{spec}: an option that is not a hash: {options}"
        pins[canonicalize_name(requirement.name)] = Pin(
            canonicalize_name(requirement.name), specifier.version, hashes
        )
    return pins


def lock_pins() -> dict[NormalizedName, str]:
    pins = {}
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def top_level() -> list[Requirement]:
    lines = (raw.split("#", 1)[0].strip() for raw in TOP_LEVEL.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def closure(roots: list[Requirement]) -> set[NormalizedName]:
    """Every distribution the roots need on the Lambda, from the installed packages' metadata:
    each one's Requires-Dist, with markers evaluated for the Lambda and for the extras asked."""
    seen: set[NormalizedName] = set()
    todo = [(r, frozenset(r.extras)) for r in roots]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(requirement.name) or []:
            needed = Requirement(text)
            wanted = needed.marker is None or any(
                needed.marker.evaluate({**LAMBDA, "extra": extra}) for extra in {"", *extras}
            )
            if wanted:
                todo.append((needed, frozenset(needed.extras)))
    return seen


def test_every_requirement_is_pinned_with_hashes() -> None:
    pins = hashed_pins(HASHED.read_text())
    assert pins
    for pin in pins.values():
        assert pin.hashes, f"{pin.name}=={pin.version} has no hash"
        for digest in pin.hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), (pin.name, digest)


def test_every_pin_is_the_locks() -> None:
    lock = lock_pins()
    for pin in hashed_pins(HASHED.read_text()).values():
        assert lock.get(pin.name) == pin.version, f"{pin.name}: layer {pin.version}, lock {lock}"


def test_the_layer_holds_exactly_the_closure_of_its_top_level_requirements() -> None:
    """What the dev venv installed from the lock (its metadata) says requirements.in needs on the
    Lambda, less what the runtime has: no more (a stale pin) and no less (an unhashed newcomer)."""
    wanted = closure(top_level()) - RUNTIME
    pinned = set(hashed_pins(HASHED.read_text()))
    assert pinned == wanted, (sorted(pinned - wanted), sorted(wanted - pinned))
    assert not pinned & RUNTIME
    for name in pinned:
        assert metadata.version(name) == lock_pins()[name], f"{name}: the venv is not the lock's"


def test_the_closure_follows_markers_and_extras() -> None:
    """The closure walk itself: an extra pulls its own requirements, a platform marker that the
    Lambda does not meet pulls nothing."""
    plain = closure([Requirement("moto")])
    with_extra = closure([Requirement("moto[sqs]")])
    assert canonicalize_name("py-partiql-parser") not in plain
    assert canonicalize_name("py-partiql-parser") in closure([Requirement("moto[dynamodb]")])
    assert plain <= with_extra
    assert not Marker('sys_platform == "win32"').evaluate(LAMBDA)


def test_the_parser_refuses_what_pip_would_not_verify() -> None:
    with pytest.raises(AssertionError, match="not pinned"):
        hashed_pins("twilio>=9 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    assert hashed_pins("twilio==9.13.0\n")[canonicalize_name("twilio")].hashes == ()


@pytest.mark.slow
@pytest.mark.parametrize(
    "platform",
    [
        [],  # this machine's (x86_64): what `sam build` downloads first, and a dev install
        ["--platform", "manylinux2014_aarch64", "--only-binary=:all:"],  # the Lambda's
    ],
    ids=["x86_64", "aarch64"],
)
def test_pip_verifies_every_distribution_it_takes_from_the_registry(
    platform: list[str], tmp_path: Path
) -> None:
    """From the registry (pip's cache after the first run): pip, in hash-checking mode because
    every line has a hash, takes each pin's file for the platform and checks its digest."""
    python = ["--python-version", "3.13", "--implementation", "cp", "--abi", "cp313"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--require-hashes",
            "--no-deps",
            *(platform and [*platform, *python]),
            "-r",
            str(HASHED),
            "--dest",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == len(hashed_pins(HASHED.read_text()))
    if platform:
        assert any("aarch64" in name and name.startswith("aiohttp-") for name in files), files


@pytest.mark.slow
def test_sam_build_refuses_an_arm64_wheel_the_hashes_do_not_name(tmp_path: Path) -> None:
    """The hashes guard what ships, so `sam build` itself must check the Lambda's (aarch64) files,
    the native ones above all. The registry here is a folder holding every pinned file for both
    platforms, aiohttp's aarch64 wheel altered: the layer build must stop, not ship it.
    (lambda-builders' own pip workflow checks only its first, x86_64, download: it then fetches
    the aarch64 wheels of native packages by name and version, where no hash is asked.)"""
    registry = tmp_path / "registry"
    python = ["--python-version", "3.13", "--implementation", "cp", "--abi", "cp313"]
    aarch64 = ["--platform", "manylinux2014_aarch64", "--only-binary=:all:", *python]
    for platform in ([], aarch64):
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps"]
        done = subprocess.run(
            [*pip, *platform, "-r", str(HASHED), "--dest", str(registry)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = registry.glob("aiohttp-*aarch64*.whl")
    with zipfile.ZipFile(wheel, "a") as altered:
        altered.writestr("aiohttp/altered.py", "ALTERED = True\n")
    template = tmp_path / "template.yaml"
    template.write_text(
        (ROOT / "template.yaml")
        .read_text()
        .replace("ContentUri: layers/common", f"ContentUri: {ROOT / 'layers/common'}")
    )
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(registry),
    }
    build = tmp_path / "build"
    done = subprocess.run(
        [
            *(str(bin_dir / "sam"), "build", "CommonLayer", "--template", str(template)),
            *("--build-dir", str(build), "--cache-dir", str(tmp_path / "cache")),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    shipped = list(build.rglob("aiohttp/altered.py"))
    assert not shipped, "sam build put an aarch64 wheel with no matching hash into the layer"
    assert done.returncode != 0
    assert "do not match the hashes" in (done.stdout + done.stderr).lower(), done.stderr[-3000:]


def test_the_lock_pins_everything_requirements_dev_in_needs() -> None:
    """`make lock` is `pip freeze` after installing requirements-dev.in, so a pin edited out of
    the lock by hand comes back at the next `make lock`, and a fresh `make setup` installs less
    than the packages asked for need. From the installed metadata, here: a requirement not
    installed in this venv is wanted, but its own requirements cannot be read."""
    lines = (raw.split("#", 1)[0].strip() for raw in DEV_TOP_LEVEL.read_text().splitlines())
    todo = [Requirement(line) for line in lines if line and not line.startswith("-r")]
    todo += top_level()
    wanted: set[NormalizedName] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in wanted:
            continue
        wanted.add(name)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            needed = Requirement(text)
            extras = {"", *requirement.extras}
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                todo.append(needed)
    missing = wanted - set(lock_pins())
    assert not missing, f"requirements-dev.in needs these, the lock lacks them: {sorted(missing)}"
