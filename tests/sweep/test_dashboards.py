"""The shipped Grafana dashboard queries only metrics the driver really exports (issue 20)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def exported_metrics() -> set[str]:
    """Every `Gauge("name", ...)` in equisweep/sweep/, as Prometheus names it (Ray adds `ray_`)."""
    names = set()
    for path in (ROOT / "equisweep" / "sweep").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) in
                    {"Gauge", "Counter", "Histogram"} and node.args
                    and isinstance(node.args[0], ast.Constant)):
                names.add("ray_" + node.args[0].value)
    return names


def test_every_panel_queries_an_exported_metric():
    exported = exported_metrics()
    assert exported  # the driver exports gauges; an empty set would pass vacuously
    dash = json.loads((ROOT / "dashboards" / "grafana-equisweep.json").read_text())
    queried = set()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            used = set(re.findall(r"\bray_equisweep_\w+", target["expr"]))
            assert used, f"panel {panel['title']!r} queries no equisweep metric"
            assert used <= exported, f"panel {panel['title']!r}: {used - exported} not exported"
            queried |= used
    assert queried == exported  # and every exported metric has a panel


def test_prometheus_config_scrapes_rays_service_discovery_file():
    conf = yaml.safe_load((ROOT / "dashboards" / "prometheus.yml").read_text())
    files = [f for job in conf["scrape_configs"] for sd in job["file_sd_configs"]
             for f in sd["files"]]
    assert files == ["/tmp/ray/prom_metrics_service_discovery.json"]
