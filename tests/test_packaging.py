"""The install path CI and users take: pins agree everywhere, CI runs exactly `make test`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import yaml

from conftest import REPO


def pyproject_dependencies() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def test_conda_env_pins_match_pyproject():
    env = yaml.safe_load((REPO / "envs" / "sambrats.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert sorted(pip) == sorted(pyproject_dependencies())


def test_makefile_installs_the_same_torch_pair_as_pyproject():
    pins = {dep for dep in pyproject_dependencies() if dep.startswith(("torch==", "torchvision=="))}
    assert pins == {"torch==2.14.1", "torchvision==0.29.1"}
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"pip install --quiet --no-compile torch==2\.14\.1 torchvision==0\.29\.1", makefile)


def test_ci_runs_exactly_the_readme_test_command():
    commands = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert commands == ["make test"]
    assert "make test" in (REPO / "README.md").read_text()


def test_sam2_is_built_without_cuda_and_without_a_second_torch():
    makefile = (REPO / "Makefile").read_text()
    assert "SAM2_BUILD_CUDA=0 $(BIN)/python -m pip install --quiet --no-compile --no-build-isolation sam2==1.1.0" in makefile
    assert makefile.index("torchvision==0.29.1") < makefile.index("sam2==1.1.0") < makefile.index("-e '.[test]'")
    assert "sam2==1.1.0" in pyproject_dependencies()


def test_every_install_skips_byte_compiling_and_compileall_does_it_at_the_end():
    """pip compiles on one core as it installs; compileall afterwards uses every core."""
    makefile = (REPO / "Makefile").read_text()
    installs = re.findall(r"^\t.*pip install (.*)$", makefile, flags=re.MULTILINE)
    assert len(installs) == 4 and all(line.startswith("--quiet --no-compile ") for line in installs), installs
    assert makefile.index("-e '.[test]'") < makefile.index("-m compileall -q -j 0 $(VENV)/lib") < makefile.index("touch $(STAMP)")


def test_the_jobs_conda_environment_installs_sambrats_itself(tmp_path):
    """Snakemake runs envs/sambrats.post-deploy.sh after creating the env; here in a bare venv."""
    script = REPO / "envs" / "sambrats.post-deploy.sh"
    assert "SAMBRATS_REPO" in script.read_text() and 'os.environ.update(SAMBRATS_REPO=workflow.basedir)' in (
        REPO / "Snakefile").read_text()
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "env")], check=True, timeout=300)
    environ = {**os.environ, "PATH": f"{tmp_path / 'env' / 'bin'}{os.pathsep}{os.environ['PATH']}",
               "SAMBRATS_REPO": str(REPO)}
    environ.pop("PYTHONPATH", None)
    subprocess.run(["bash", str(script)], env=environ, check=True, capture_output=True, timeout=600)
    found = subprocess.run([str(tmp_path / "env" / "bin" / "python"), "-c", "import sambrats; print(sambrats.__file__)"],
                           capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path)
    assert found.stdout.strip() == str(REPO / "src" / "sambrats" / "__init__.py")


def test_the_paper_configs_header_runs_a_workstation_with_one_gpu_at_a_time():
    header = [line for line in (REPO / "config" / "config.yaml").read_text().splitlines() if line.startswith("#")]
    assert any("--cores 8 --resources gpu=1 --configfile config/config.yaml" in line for line in header)
