"""What a reader downloads builds as the page says: each module's zip, unpacked, with its own Makefile.

The zips are taken from a real HTML build of the docs (``_samples/<name>.zip``), unpacked into the
release's build chroot and built there with ``make KDIR=<headers>``, the command the Makefile's comment
gives, not with the pipeline's own ``make -C <headers> M=...``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kprobe_docs.build.environment import chroot_command
from kprobe_docs.paths import project_root
from kprobe_docs.runners.guests import environment_for
from kprobe_docs.sources.sample import Sample, load_sample
from kprobe_docs.sources.targets import load_catalog

ROOT = project_root(Path(__file__).parent)
TARGETS = ["debian-bookworm-amd64", "debian-trixie-amd64"]


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    html = tmp_path_factory.mktemp("html")
    argv = [sys.executable, "-m", "sphinx", "-q", "-b", "html", "-c", str(ROOT), str(ROOT / "docs"), str(html)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return html / "_samples"


@pytest.mark.parametrize("target_name", TARGETS)
def test_download_build(target_name: str, zips: Path) -> None:
    """Every module zip the target's kernel is claimed for builds with ``make KDIR=...``, or fails as claimed."""
    catalog = load_catalog()
    target = catalog.targets[target_name]
    env = environment_for(target, catalog, lambda _: None)
    kernel = env.kernels[target.name]
    samples = [load_sample(d) for d in sorted((ROOT / "samples").iterdir()) if d.is_dir()]
    modules = [s for s in samples if s.kind == "kmod" and s.claims(target.arch, kernel.upstream)]
    assert modules, f"no module sample claims {target.name}"
    scratch = env.root / "kd-downloads" / target.name
    shutil.rmtree(scratch, ignore_errors=True)

    def build(sample: Sample) -> str:
        """Why the sample's download did not do what its page says, or ""."""
        with zipfile.ZipFile(zips / f"{sample.name}.zip") as archive:
            archive.extractall(scratch)  # the zip holds <name>/, as unzip makes it
        argv = ["make", "-C", f"/kd-downloads/{target.name}/{sample.name}", f"KDIR={kernel.headers}"]
        proc = subprocess.run(chroot_command(env.root, argv), capture_output=True, text=True)
        built = proc.returncode == 0 and (scratch / sample.name / f"{sample.name}.ko").is_file()
        if built != sample.build_fails:
            return ""
        said = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return f"{sample.name}: {'built' if built else 'did not build'}: {' | '.join(said)}"

    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            problems = [problem for problem in pool.map(build, modules) if problem]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert not problems, "\n".join(problems)
