"""The Dockerfile, checked statically (no Docker daemon here): multi-stage, pinned slim Python 3.11 base,
non-root user matching the manifests, extras chosen by build arg, no build tools in the final stage.
The Makefile's `images` target and the manifests' image names agree on the four roles.
"""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.k8s_support import ROOT, render, workloads

ROLES = {"engine", "serving", "batch", "mlflow"}
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|make|clang|cmake|python3-dev|libpq-dev)\b")


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        out.append((instr.upper(), rest.strip()))
    return out


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instr, args in instructions:
        if instr == "FROM":
            result.append([])
        if result:
            result[-1].append((instr, args))
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def _base_image(instructions) -> str:
    args = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)
    return args["PYTHON_IMAGE"]


def test_base_image_is_a_pinned_slim_python_311(dockerfile):
    image = _base_image(dockerfile)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), image
    for instr, args in dockerfile:
        if instr == "FROM":
            ref = args.split()[0]
            assert ref == "${PYTHON_IMAGE}" or ":" in ref, args
            assert "latest" not in ref


def test_multi_stage_with_build_tools_only_in_the_build_stage(dockerfile):
    parts = stages(dockerfile)
    assert len(parts) >= 2
    build, final = parts[0], parts[-1]
    assert any(BUILD_TOOLS.search(a) for i, a in build if i == "RUN"), "expected compilers in the build stage"
    for instr, args in final:
        assert not (instr == "RUN" and BUILD_TOOLS.search(args)), args
        assert not (instr == "RUN" and "pip install" in args), "install in the build stage, copy the venv"
    assert any(i == "COPY" and a.startswith("--from=build") for i, a in final)


def test_final_stage_runs_as_the_manifests_non_root_user(dockerfile):
    final = stages(dockerfile)[-1]
    users = [a for i, a in final if i == "USER"]
    assert users, "final stage has no USER"
    uid = users[-1].split(":")[0]
    assert uid not in ("0", "root") and uid.isdigit(), users[-1]
    for _, tmpl in workloads(render("overlays/gke") + render("overlays/gke/jobs")):
        assert str(tmpl["spec"]["securityContext"]["runAsUser"]) == uid
    entry = [a for i, a in final if i == "ENTRYPOINT"]
    assert entry == ['["bcistream"]']


def test_extras_come_from_a_build_arg_and_exist(dockerfile):
    build = stages(dockerfile)[0]
    assert any(i == "ARG" and a.startswith("EXTRAS=") for i, a in build)
    assert any(i == "RUN" and '".[${EXTRAS}]"' in a for i, a in build)
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    text = (ROOT / "Dockerfile").read_text() + (ROOT / "Makefile").read_text()
    used = re.findall(r"EXTRAS=([a-z0-9,-]+)", text)
    assert used
    for spec in used:
        assert set(spec.split(",")) <= extras, spec


def test_makefile_builds_every_image_the_manifests_use():
    makefile = (ROOT / "Makefile").read_text()
    built = set(re.findall(r"-t \$\(REGISTRY\)/([a-z]+):\$\(TAG\)", makefile))
    assert built == ROLES
    used = set()
    for rel in ("overlays/local", "overlays/local/jobs"):
        for _, tmpl in workloads(render(rel)):
            for c in tmpl["spec"]["containers"]:
                repo, tag = c["image"].rsplit(":", 1)
                assert repo.startswith("bcistream/") and tag == "0.1.0", c["image"]
                used.add(repo.split("/", 1)[1])
    assert used == ROLES


def test_dockerignore_keeps_the_context_small():
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "bcistream"}
    copied = re.findall(r"^COPY (?!--from)(.+?) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    for entry in copied:
        for path in entry.split():
            assert path in allowed, path
