"""Check that `sam build` produced a layer that will import on the Lambda runtime the template declares.

`sam build` without a container installs the layer's requirements with pip for the target platform; if
pip fell back to the build machine's platform (an x86_64 laptop, a newer CPython), the stack deploys fine
and then fails at import time. This script reads the built template (<build dir>/template.yaml), finds
each layer's and function's build folder, and checks:

* the reaper layer holds python/tflock_reaper/__init__.py and the runtime dependencies' import packages;
* every compiled file (``*.so``, ``*.so.N``) is an ELF object for the target machine (aarch64 for arm64),
  and every CPython extension tagged ``cpython-XY-<arch>-linux-gnu`` is for the runtime's CPython and
  architecture;
* every module has its ``.pyc`` for the runtime's CPython (``make sam-build`` precompiles them: Lambda cannot write
  them, so a module without one is compiled on every cold start);
* every ``*.dist-info/WHEEL`` tag is pure (``*-none-any``) or a glibc manylinux wheel for the target
  architecture, for the runtime's CPython (``cp312-cp312``) or the stable ABI (``cp3X-abi3``, X <= 12),
  and not newer than the runtime's glibc.

Usage: scripts/check_build.py .aws-sam/build [--layer ReaperLayer]
Exit status: 0 when everything checks, 1 with a list of offenders, 2 when the build dir is unusable.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The import names that must be in the reaper layer: our package and its runtime dependencies
# (layers/reaper/requirements.txt: aws-lambda-powertools, pydantic (with pydantic-core), PyYAML, google-re2,
# slack_sdk).
REQUIRED_PACKAGES = ("tflock_reaper", "aws_lambda_powertools", "pydantic", "pydantic_core", "yaml", "re2", "slack_sdk")

# Lambda architecture name -> (ELF e_machine, the architecture in wheel and extension-module tags).
ARCHITECTURES: dict[str, tuple[int, str]] = {
    "arm64": (0xB7, "aarch64"),  # EM_AARCH64
    "x86_64": (0x3E, "x86_64"),  # EM_X86_64
}

# Python runtime -> glibc of its execution environment (python3.12 and later run on Amazon Linux 2023).
RUNTIME_GLIBC: dict[str, tuple[int, int]] = {
    "python3.12": (2, 34),
    "python3.13": (2, 34),
}

# The legacy manylinux names and the glibc version each stands for (PEP 600).
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}

ELF_MAGIC = b"\x7fELF"
ELF_HEADER_LEN = 20  # e_ident (16 bytes), e_type (2), e_machine (2)
EI_DATA = 5  # e_ident byte giving the byte order
ELFDATA2MSB = 2  # big-endian (1 is little-endian)
WHEEL_TAG_PARTS = 3  # interpreter-abi-platform
EXTENSION_TAG = re.compile(r"\.cpython-(?P<version>\d+)-(?P<arch>[a-z0-9_]+)-linux-gnu\.so$")
MANYLINUX_TAG = re.compile(r"^manylinux_(?P<major>\d+)_(?P<minor>\d+)_(?P<arch>[a-z0-9_]+)$")
LEGACY_MANYLINUX_TAG = re.compile(r"^(?P<name>manylinux1|manylinux2010|manylinux2014)_(?P<arch>[a-z0-9_]+)$")
STABLE_ABI_INTERPRETER = re.compile(r"^cp3(?P<minor>\d+)$")


class BuildError(Exception):
    """The build directory or its template cannot be checked at all."""


@dataclass(frozen=True)
class Target:
    """The platform the built artifacts must run on, taken from the layer's build metadata."""

    runtime: str  # e.g. python3.12
    architecture: str  # Lambda name, e.g. arm64

    @property
    def cpython(self) -> str:
        """The CPython tag, e.g. ``312`` for python3.12."""
        return self.runtime.removeprefix("python").replace(".", "")

    @property
    def minor(self) -> int:
        return int(self.runtime.removeprefix("python").split(".")[1])

    @property
    def elf_machine(self) -> int:
        return ARCHITECTURES[self.architecture][0]

    @property
    def tag_arch(self) -> str:
        return ARCHITECTURES[self.architecture][1]

    @property
    def glibc(self) -> tuple[int, int]:
        return RUNTIME_GLIBC[self.runtime]


@dataclass
class Report:
    """What was checked and what failed."""

    extensions: int = 0
    wheels: int = 0
    bytecode: int = 0
    offenders: list[str] = field(default_factory=list)


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that accepts CloudFormation short-form tags (!Ref, !Sub, ...) as plain nodes."""


def _construct_tagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return None


_CfnLoader.add_multi_constructor("!", _construct_tagged)


def load_resources(build_dir: Path) -> dict[str, dict[str, Any]]:
    """The built template's resources (SAM rewrites CodeUri/ContentUri to paths under the build dir)."""
    template_path = build_dir / "template.yaml"
    if not template_path.is_file():
        raise BuildError(f"{template_path} not found: run `sam build` first")
    loader = _CfnLoader(template_path.read_text(encoding="utf-8"))
    try:
        template = loader.get_single_data()
    finally:
        loader.dispose()
    resources = template.get("Resources") if isinstance(template, dict) else None
    if not isinstance(resources, dict):
        raise BuildError(f"{template_path} has no Resources")
    return {name: res for name, res in resources.items() if isinstance(res, dict)}


def artifact_dir(build_dir: Path, uri: object, name: str) -> Path:
    if not isinstance(uri, str):
        raise BuildError(f"{name}: its code location is not a local path in the built template ({uri!r})")
    path = Path(uri) if Path(uri).is_absolute() else build_dir / uri
    if not path.is_dir():
        raise BuildError(f"{name}: build folder {path} not found")
    return path


def layer_target(name: str, resource: dict[str, Any]) -> Target:
    metadata = resource.get("Metadata") or {}
    properties = resource.get("Properties") or {}
    runtime = metadata.get("BuildMethod") or next(iter(properties.get("CompatibleRuntimes") or []), None)
    architecture = metadata.get("BuildArchitecture") or next(
        iter(properties.get("CompatibleArchitectures") or []), "x86_64"
    )
    if runtime not in RUNTIME_GLIBC:
        raise BuildError(f"{name}: unsupported runtime {runtime!r} (known: {', '.join(RUNTIME_GLIBC)})")
    if architecture not in ARCHITECTURES:
        raise BuildError(f"{name}: unsupported architecture {architecture!r}")
    return Target(runtime=runtime, architecture=architecture)


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of the file, or None when it is not an ELF file."""
    with path.open("rb") as handle:
        header = handle.read(ELF_HEADER_LEN)
    if len(header) < ELF_HEADER_LEN or not header.startswith(ELF_MAGIC):
        return None
    if header[EI_DATA] == ELFDATA2MSB:
        return int.from_bytes(header[18:20], "big")
    return int.from_bytes(header[18:20], "little")


def compiled_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and (path.name.endswith(".so") or ".so." in path.name):
            yield path


def check_compiled(root: Path, target: Target, report: Report) -> None:
    for path in compiled_files(root):
        report.extensions += 1
        where = path.relative_to(root.parent)
        machine = elf_machine(path)
        if machine is None:
            report.offenders.append(f"{where}: not an ELF shared object")
        elif machine != target.elf_machine:
            report.offenders.append(
                f"{where}: ELF machine {machine:#x}, expected {target.elf_machine:#x} ({target.tag_arch})"
            )
        tag = EXTENSION_TAG.search(path.name)
        if tag and (tag["version"], tag["arch"]) != (target.cpython, target.tag_arch):
            report.offenders.append(
                f"{where}: built for cpython-{tag['version']}-{tag['arch']}, "
                f"expected cpython-{target.cpython}-{target.tag_arch}"
            )


def platform_ok(platform: str, target: Target) -> bool:
    if platform == "any":
        return True
    if match := MANYLINUX_TAG.match(platform):
        glibc = (int(match["major"]), int(match["minor"]))
    elif match := LEGACY_MANYLINUX_TAG.match(platform):
        glibc = LEGACY_MANYLINUX[match["name"]]
    else:
        return False  # musllinux, macOS, Windows, linux_<arch> (not portable)
    return match["arch"] == target.tag_arch and glibc <= target.glibc


def wheel_tag_ok(tag: str, target: Target) -> bool:
    """One expanded wheel tag ``interpreter-abi-platform``, e.g. cp312-cp312-manylinux_2_17_aarch64."""
    parts = tag.split("-")
    if len(parts) != WHEEL_TAG_PARTS:
        return False
    interpreter, abi, platform = parts
    if not platform_ok(platform, target):
        return False
    if platform == "any":
        return abi == "none"
    if abi == f"cp{target.cpython}":
        return interpreter == f"cp{target.cpython}"
    if abi == "abi3":
        stable = STABLE_ABI_INTERPRETER.match(interpreter)
        return stable is not None and int(stable["minor"]) <= target.minor
    return abi == "none" and interpreter in {"py3", f"cp{target.cpython}"}


def expand_tag(tag: str) -> list[str]:
    """Expand a compressed tag set (PEP 425: ``py2.py3-none-any``) into single tags."""
    parts = tag.split("-")
    if len(parts) != WHEEL_TAG_PARTS:
        return [tag]
    return [
        f"{interpreter}-{abi}-{platform}"
        for interpreter in parts[0].split(".")
        for abi in parts[1].split(".")
        for platform in parts[2].split(".")
    ]


def check_wheels(root: Path, target: Target, report: Report) -> None:
    for wheel in sorted(root.rglob("*.dist-info/WHEEL")):
        report.wheels += 1
        where = wheel.relative_to(root.parent)
        lines = wheel.read_text(encoding="utf-8", errors="replace").splitlines()
        tags = [line.partition(":")[2].strip() for line in lines if line.startswith("Tag:")]
        if not tags:
            report.offenders.append(f"{where}: no Tag line")
            continue
        bad = [single for tag in tags for single in expand_tag(tag) if not wheel_tag_ok(single, target)]
        if bad:
            report.offenders.append(
                f"{where}: tag {', '.join(bad)} is not for {target.runtime} on manylinux {target.tag_arch} "
                f"(glibc <= {target.glibc[0]}.{target.glibc[1]}) nor pure Python"
            )


def check_required(layer_dir: Path, report: Report) -> None:
    site = layer_dir / "python"
    for package in REQUIRED_PACKAGES:
        if not (site / package / "__init__.py").is_file():
            report.offenders.append(f"{layer_dir.name}: python/{package}/__init__.py missing")


def check_bytecode(root: Path, target: Target, report: Report) -> None:
    """Every module ships its ``.pyc`` for the runtime's CPython (``make sam-build`` compiles them): Lambda's ``/opt``
    and task root are read-only, so a module without one is compiled from source on every cold start."""
    for source in root.rglob("*.py"):
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-{target.cpython}.pyc"
        report.bytecode += 1
        if not compiled.is_file():
            report.offenders.append(f"{source.relative_to(root.parent)}: no {compiled.name} (run make sam-build)")


def tree_size(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink())


def check(build_dir: Path, reaper_layer: str) -> Report:
    resources = load_resources(build_dir)
    layers = {
        name: res
        for name, res in resources.items()
        if res.get("Type") == "AWS::Serverless::LayerVersion" and (res.get("Metadata") or {}).get("BuildMethod")
    }
    functions = {name: res for name, res in resources.items() if res.get("Type") == "AWS::Serverless::Function"}
    if reaper_layer not in layers:
        raise BuildError(f"layer {reaper_layer} with a BuildMethod not found in the built template")

    report = Report()
    target = layer_target(reaper_layer, layers[reaper_layer])
    print(
        f"target: {target.runtime} on {target.architecture} ({target.tag_arch}, glibc <= "
        f"{target.glibc[0]}.{target.glibc[1]})"
    )
    for name, resource in sorted(layers.items()):
        layer_dir = artifact_dir(build_dir, (resource.get("Properties") or {}).get("ContentUri"), name)
        if name == reaper_layer:
            check_required(layer_dir, report)
        check_compiled(layer_dir, layer_target(name, resource), report)
        check_wheels(layer_dir, layer_target(name, resource), report)
        check_bytecode(layer_dir, layer_target(name, resource), report)
        print(f"layer {name}: {tree_size(layer_dir) / 1_000_000:.1f} MB ({layer_dir})")
    for name, resource in sorted(functions.items()):
        function_dir = artifact_dir(build_dir, (resource.get("Properties") or {}).get("CodeUri"), name)
        check_compiled(function_dir, target, report)
        check_wheels(function_dir, target, report)
        check_bytecode(function_dir, target, report)
        print(f"function {name}: {tree_size(function_dir) / 1000:.1f} KB ({function_dir})")
    print(
        f"checked {report.extensions} compiled files, {report.wheels} wheel tag files and the bytecode of "
        f"{report.bytecode} modules"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("build_dir", type=Path, help="the sam build output, e.g. .aws-sam/build")
    parser.add_argument("--layer", default="ReaperLayer", help="logical id of the reaper layer (ReaperLayer)")
    args = parser.parse_args(argv)
    try:
        report = check(args.build_dir, args.layer)
    except BuildError as error:
        print(f"check_build: {error}", file=sys.stderr)
        return 2
    sys.stdout.flush()  # keep the report above the offenders when both streams go to one place
    if report.offenders:
        print(f"check_build: FAILED, {len(report.offenders)} offender(s):", file=sys.stderr)
        for offender in report.offenders:
            print(f"  - {offender}", file=sys.stderr)
        return 1
    print("check_build: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
