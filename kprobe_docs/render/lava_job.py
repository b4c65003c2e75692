"""``kprobe-lava-job TARGET``: the LAVA job ``kprobe-docs lava export`` writes for a lab, shown on a page.

The job is made by the exporter's own function from the newest results: the
samples of the module boot that the newest run built for ``TARGET``, with
their time limits, at the example artifacts URL the page names.  It is
shown as YAML text.
"""

from __future__ import annotations

from typing import Any

import yaml
from docutils import nodes
from sphinx.application import Sphinx

from ..runners import lava
from ..store import results
from . import claims
from .sphinxext import _literal, _para, _ResultsTable

ARTIFACTS_URL = "https://lava.example.org/artifacts/kprobe-docs"  # the page's example; a lab passes its own


class LavaJobDirective(_ResultsTable):
    """The lab job of one target, as ``lava export --artifacts-url`` writes it for the newest run's samples."""

    required_arguments = 1

    def nodes_for(self, newest: results.Newest) -> list[nodes.Node]:
        target = self.arguments[0]
        facts = newest.targets.get(target)
        if facts is None:
            return [_para(nodes.Text(f"No results for {target} yet: run kprobe-docs verify --targets {target}."))]
        samples = claims._samples(self.state.document.settings.env.app)
        mine = [r for (_, t), r in newest.records.items() if t == target and r.sample in samples]
        built = [r.sample for r in mine if r.kind in lava.KINDS and r.build.get("status") == "ok"]
        seconds = lava.job_seconds(float(samples[name].timeout) for name in built)
        base = f"{ARTIFACTS_URL}/{target}"
        device_type = lava.DEVICE_TYPE
        job = lava.job_definition(target, facts.get("arch", "?"), (f"{base}/vmlinuz", f"{base}/ramdisk.cpio.gz"), 0,
                                  seconds, device_type)  # fmt: skip
        text = yaml.safe_dump(job, sort_keys=False, default_flow_style=False, width=1000)
        command = f"kprobe-docs lava export --targets {target} --out lava-jobs --artifacts-url {ARTIFACTS_URL}"
        said = f" writes as lab-job.yaml for the {len(built)} module and tracefs samples the newest run built:"
        intro = _para(_literal(command), nodes.Text(said))
        return [intro, nodes.literal_block(text, text, language="yaml", classes=["kd-lava-job"])]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("kprobe-lava-job", LavaJobDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
