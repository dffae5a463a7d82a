"""Kubernetes commands (``bcistream k8s render-job|submit``) and the ``--on k8s`` hook.

``train``, ``tune`` and ``retrain`` run on Kubernetes by handing their own command line to
`run_on_k8s`, which builds the Job from the shipped manifests (`bcistream.training.launcher`)::

    @app.command()
    def train(ctx: typer.Context, ..., on: OnOption = "local", namespace: NamespaceOption = None,
              dry_run: DryRunOption = False, overlay: OverlayOption = "gke", image: ImageOption = None,
              logs: LogsOption = False):
        if on == "k8s":
            raise typer.Exit(run_on_k8s("train", ctx=ctx))
        ...  # train in-process
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bcistream.cli.app import app
from bcistream.cli.common import console
from bcistream.errors import BcistreamError

__all__ = [
    "DryRunOption",
    "ImageOption",
    "LAUNCHER_PARAMS",
    "LogsOption",
    "NamespaceOption",
    "OnOption",
    "OverlayOption",
    "args_from_context",
    "run_on_k8s",
]

# Options a batch command shares for running itself as a Job (reuse them so the names match).
OnOption = Annotated[str, typer.Option("--on", help="Where to run: local (in-process) or k8s (a Job).")]
NamespaceOption = Annotated[str | None, typer.Option(help="Kubernetes namespace (default: the template's).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="With --on k8s: print, do not submit.")]
OverlayOption = Annotated[str, typer.Option(help="Job templates of this k8s overlay: local or gke.")]
ImageOption = Annotated[str | None, typer.Option(help="Image for the Job (default: the pinned tag).")]
LogsOption = Annotated[bool, typer.Option("--logs", help="With --on k8s: stream the pods' logs.")]

#: Parameter names that steer the launcher and are not forwarded to the command in the pod.
LAUNCHER_PARAMS = frozenset({"on", "namespace", "dry_run", "overlay", "image", "logs", "template",
                             "job_name", "parallelism", "no_wait", "timeout"})

k8s_app = typer.Typer(help="Run batch commands as Kubernetes Jobs built from the k8s/ manifests.",
                      no_args_is_help=True, rich_markup_mode=None)
app.add_typer(k8s_app, name="k8s")


def args_from_context(ctx: typer.Context, skip: frozenset[str] = LAUNCHER_PARAMS) -> list[str]:
    """Rebuild the arguments the user typed for this command, minus the launcher's own options.

    Only parameters given on the command line are forwarded; defaults and environment values are
    left to the pod (its settings come from the ConfigMap).
    """
    out: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if name is None or name in skip or name not in ctx.params:
            continue
        # Compared by name: typer and click may each bring their own ParameterSource enum.
        if getattr(ctx.get_parameter_source(name), "name", None) != "COMMANDLINE":
            continue
        value = ctx.params[name]
        # Duck-typed: typer ships its own copy of click, so isinstance(click.Option) fails.
        if getattr(param, "param_type_name", "") == "argument":
            out.extend(str(v) for v in (value if isinstance(value, list | tuple) else [value]))
            continue
        if getattr(param, "is_flag", False):
            if value and param.opts:
                out.append(param.opts[0])
            elif not value and param.secondary_opts:
                out.append(param.secondary_opts[0])
            continue
        values = value if getattr(param, "multiple", False) else [value]
        for v in values:
            if v is not None:
                out.extend([param.opts[0], str(v)])
    return out


def _progress_printer():
    """Print a line whenever the Job's pod counts change (works in logs and terminals alike)."""

    def show(p) -> None:
        console.print(f"{p.name}: {p.succeeded}/{p.completions} done, {p.active} running, {p.failed} failed")

    return show


def run_on_k8s(
    kind: str,
    args: list[str] | None = None,
    *,
    ctx: typer.Context | None = None,
    namespace: str | None = None,
    dry_run: bool | None = None,
    overlay: str | None = None,
    image: str | None = None,
    logs: bool | None = None,
    template: Path | None = None,
    name: str | None = None,
    parallelism: int | None = None,
    replace_args: bool = False,
    wait: bool = True,
    timeout: float | None = None,
) -> int:
    """Run ``bcistream KIND ARGS`` as a Job; return the exit code for the calling command.

    With ``ctx`` (the calling command's click context), ``args`` default to what the user typed
    (`args_from_context`) and the launcher options default to the command's own ``--namespace``,
    ``--dry-run``, ``--overlay``, ``--image`` and ``--logs`` values.
    """
    from bcistream.training.launcher import launch_job

    params = ctx.params if ctx is not None else {}
    if args is None:
        args = args_from_context(ctx) if ctx is not None else None

    def pick(value, key, default):
        return value if value is not None else params.get(key, default)

    launch_job(
        kind,
        args,
        namespace=pick(namespace, "namespace", None),
        image=pick(image, "image", None),
        dry_run=bool(pick(dry_run, "dry_run", False)),
        overlay=pick(overlay, "overlay", "gke") or "gke",
        template=template,
        name=name,
        parallelism=pick(parallelism, "parallelism", None),
        replace_args=replace_args,
        wait=wait,
        logs=bool(pick(logs, "logs", False)),
        timeout=timeout,
        out=sys.stdout,
        on_progress=_progress_printer(),
    )
    return 0


KindArg = Annotated[str, typer.Argument(help="train, tune or retrain.")]
ArgsArg = Annotated[list[str] | None, typer.Argument(metavar="ARGS",
                                                     help="Arguments of the command, after --.")]
TemplateOption = Annotated[Path | None, typer.Option(help="YAML rendered from your own overlay.")]
NameOption = Annotated[str | None, typer.Option("--name", help="Job name (default: generated).")]
ParallelismOption = Annotated[int | None, typer.Option(help="tune: number of parallel workers.")]
ReplaceOption = Annotated[bool, typer.Option("--replace-args", help="Drop the template's own arguments.")]


@k8s_app.command("render-job")
def render_job(
    kind: KindArg,
    args: ArgsArg = None,
    overlay: OverlayOption = "gke",
    template: TemplateOption = None,
    namespace: NamespaceOption = None,
    image: ImageOption = None,
    job_name: NameOption = None,
    parallelism: ParallelismOption = None,
    replace_args: ReplaceOption = False,
) -> None:
    """Print the Job for `bcistream KIND ARGS` as YAML (same as --on k8s --dry-run)."""
    run_on_k8s(kind, args, namespace=namespace, dry_run=True, overlay=overlay, image=image,
               template=template, name=job_name, parallelism=parallelism, replace_args=replace_args)


@k8s_app.command("submit")
def submit(
    kind: KindArg,
    args: ArgsArg = None,
    overlay: OverlayOption = "gke",
    template: TemplateOption = None,
    namespace: NamespaceOption = None,
    image: ImageOption = None,
    job_name: NameOption = None,
    parallelism: ParallelismOption = None,
    replace_args: ReplaceOption = False,
    logs: LogsOption = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the Job is created.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Stop waiting after this many seconds.")] = None,
) -> None:
    """Submit `bcistream KIND ARGS` as a Job and wait for it (in-cluster or kubeconfig credentials)."""
    if timeout is not None and timeout <= 0:
        raise BcistreamError(f"--timeout: must be positive, got {timeout:g}")
    run_on_k8s(kind, args, namespace=namespace, dry_run=False, overlay=overlay, image=image,
               template=template, name=job_name, parallelism=parallelism, replace_args=replace_args,
               logs=logs, wait=not no_wait,
               timeout=timeout)
