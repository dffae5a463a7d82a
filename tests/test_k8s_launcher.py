"""The Job launcher: its Jobs equal the rendered manifests and pass the kubernetes client's (pydantic)
models and kubernetes-validate; dry runs print YAML through the CLI; bad input gives one-line errors.

No Kubernetes API server can run here (DESIGN.md §4), so submitting, waiting and log streaming are
tested against a FAKE API: `kubernetes.client.BatchV1Api` / `CoreV1Api` methods and the credential
loaders are monkeypatched, and the tests assert what the launcher sent and how it reacts to the
statuses, logs and errors a real server would return.
"""

from __future__ import annotations

import copy
import io
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import pytest
import typer
import yaml
from kubernetes import client, config

from bcistream.cli import main
from bcistream.cli.k8s_cmds import DryRunOption, NamespaceOption, OnOption, args_from_context, run_on_k8s
from bcistream.errors import BcistreamError
from bcistream.training import launcher
from bcistream.training.launcher import JobFailedError, build_job, job_to_dict, launch_job, merge_args
from tests.k8s_support import JOBS, PLATFORM, find, render, render_tool

KIND_TO_TEMPLATE = {"train": "bcistream-train", "tune": "bcistream-tune", "retrain": "bcistream-retrain"}


def rendered_job(overlay: str, kind: str) -> dict:
    """The Job the manifests define for ``kind`` (retrain: the CronJob's jobTemplate)."""
    if kind == "retrain":
        cron = find(render(PLATFORM[overlay]), "CronJob", "bcistream-retrain")[0]
        return cron["spec"]["jobTemplate"]
    return find(render(JOBS[overlay]), "Job", KIND_TO_TEMPLATE[kind])[0]


@pytest.mark.parametrize("overlay", ["local", "gke"])
@pytest.mark.parametrize("kind", ["train", "tune", "retrain"])
def test_launcher_job_equals_the_rendered_manifest(overlay: str, kind: str):
    job = build_job(kind, None, overlay=overlay)
    assert isinstance(job, client.V1Job)
    assert isinstance(job.spec.template.spec.containers[0], client.V1Container)
    body = job_to_dict(job)
    want = rendered_job(overlay, kind)
    assert body["spec"] == want["spec"]
    assert want["metadata"]["labels"].items() <= body["metadata"]["labels"].items()
    assert body["metadata"]["name"].startswith(KIND_TO_TEMPLATE[kind] + "-")
    assert body["metadata"]["namespace"] == "bcistream"


def test_args_replace_only_the_container_arguments():
    job = job_to_dict(build_job("train", ["--data", "gs://b/x", "--subject", "3"], overlay="gke", name="t-1"))
    want = copy.deepcopy(rendered_job("gke", "train")["spec"])
    want["template"]["spec"]["containers"][0]["args"] = ["train", "--data", "gs://b/x", "--subject", "3"]
    assert job["spec"] == want
    assert job["metadata"]["name"] == "t-1"


def test_user_options_override_the_templates_and_the_rest_stays():
    tune = build_job("tune", ["--trials", "5", "--seed", "1"], overlay="gke")
    assert tune.spec.template.spec.containers[0].args == [
        "tune", "--storage", "$(OPTUNA_STORAGE)", "--trials", "5", "--seed", "1"]
    retrain = build_job("retrain", [], overlay="gke")
    assert retrain.spec.template.spec.containers[0].args == [
        "retrain", "--notify", "$(BCISTREAM_KAFKA_BOOTSTRAP)"]
    assert merge_args(["--promote", "--x=1"], ["--no-promote", "--x", "2"]) == ["--no-promote", "--x", "2"]
    alone = build_job("tune", ["--trials", "5"], overlay="gke", replace_args=True)
    assert alone.spec.template.spec.containers[0].args == ["tune", "--trials", "5"]
    with pytest.raises(BcistreamError, match="arguments must be --options"):
        build_job("train", ["data"], overlay="gke")


def test_overrides_namespace_image_parallelism():
    job = build_job("tune", ["--trials", "5"], overlay="gke", namespace="lab-2", parallelism=8,
                    image="registry.example/bcistream/batch:0.2.0")
    assert job.metadata.namespace == "lab-2"
    assert job.spec.parallelism == job.spec.completions == 8
    assert job.spec.max_failed_indexes <= 8 and job.spec.completion_mode == "Indexed"
    assert {c.image for c in job.spec.template.spec.containers} == {"registry.example/bcistream/batch:0.2.0"}
    local = build_job("tune", None, overlay="local", parallelism=1)
    assert local.spec.parallelism == 1 and local.spec.max_failed_indexes is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "deploy"}, "unknown job kind 'deploy'"),
    ({"kind": "train", "overlay": "aws"}, "unknown overlay 'aws'"),
    ({"kind": "train", "name": "Train_Job"}, "invalid Job name 'Train_Job'"),
    ({"kind": "train", "name": "x" * 64}, "invalid Job name"),
    ({"kind": "train", "namespace": "Lab"}, "invalid Job name 'Lab'"),
    ({"kind": "train", "image": "bcistream/batch:latest"}, "instead of 'latest'"),
    ({"kind": "train", "image": "localhost:5000/bcistream/batch"}, "has no tag"),
    ({"kind": "train", "parallelism": 4}, "--parallelism applies to Indexed Jobs"),
    ({"kind": "tune", "parallelism": 0}, "--parallelism: must be >= 1"),
])
def test_bad_input_is_refused_with_one_clear_line(kwargs, message):
    kind = kwargs.pop("kind")
    with pytest.raises(BcistreamError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build_job(kind, None, **kwargs)


def _custom_template(tmp_path: Path, edit) -> Path:
    objects = copy.deepcopy(find(render(JOBS["gke"]), "Job"))
    edit(objects)
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    return path


def test_custom_template_with_unknown_field_is_refused(tmp_path: Path):
    """The client's models would silently drop an unknown field; the launcher refuses it instead."""
    path = _custom_template(tmp_path, lambda objs: objs[0]["spec"]["template"]["spec"].update(nodeSelectr={}))
    with pytest.raises(BcistreamError, match=r"does not know: spec\.template\.spec\.nodeSelectr"):
        build_job("train", None, template=path)


def test_custom_template_with_wrong_type_is_refused_by_the_pydantic_models(tmp_path: Path):
    path = _custom_template(tmp_path, lambda objs: objs[0]["spec"].update(backoffLimit="twice"))
    with pytest.raises(BcistreamError, match="does not fit the Kubernetes Job schema"):
        build_job("train", None, template=path)


def test_custom_template_with_restart_always_is_refused(tmp_path: Path):
    path = _custom_template(tmp_path, lambda objs: objs[0]["spec"]["template"]["spec"].update(
        restartPolicy="Always"))
    with pytest.raises(BcistreamError, match="needs Never or OnFailure"):
        build_job("train", None, template=path)
    with pytest.raises(BcistreamError, match="cannot read Job template file"):
        build_job("train", None, template=tmp_path / "missing.yaml")


@pytest.mark.slow
def test_dry_run_cli_prints_yaml_that_kubernetes_validate_accepts(tmp_path: Path, capsys):
    """`bcistream k8s render-job` output is a valid Job for the same Kubernetes version as the manifests."""
    files = []
    for kind, args in [("train", ["--subject", "1"]), ("tune", ["--trials", "3"]), ("retrain", [])]:
        assert main(["k8s", "render-job", kind, "--overlay", "local", "--namespace", "lab", "--", *args]) == 0
        text = capsys.readouterr().out
        job = yaml.safe_load(text)
        assert job["kind"] == "Job" and job["metadata"]["namespace"] == "lab"
        template_args = rendered_job("local", kind)["spec"]["template"]["spec"]["containers"][0]["args"]
        assert job["spec"]["template"]["spec"]["containers"][0]["args"] == (
            [kind, *merge_args(template_args[1:], args)] if args else template_args)
        path = tmp_path / f"{kind}.yaml"
        path.write_text(text)
        files.append(str(path))
    exe = Path(render_tool.kubectl()).with_name("kubernetes-validate")
    proc = subprocess.run([str(exe), "--strict", "-k", "1.33.0", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_errors_are_one_line(capsys):
    assert main(["k8s", "render-job", "deploy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown job kind 'deploy'") and err.count("\n") == 1


# --- submit / wait / logs against a fake API ----------------------------------------------------


class FakeApi:
    """Stands in for the API server: records created Jobs, replays a list of Job statuses."""

    def __init__(self, statuses=(), pods=(), logs=None, create_error=None):
        self.created: list[tuple[str, client.V1Job]] = []
        self.statuses = list(statuses)
        self.pods = list(pods)
        self.logs = logs or {}
        self.create_error = create_error
        self.reads = 0

    def create_namespaced_job(self, namespace, body, **_):
        if self.create_error is not None:
            raise self.create_error
        self.created.append((namespace, body))
        return body

    def read_namespaced_job_status(self, name, namespace, **_):
        status = self.statuses[min(self.reads, len(self.statuses) - 1)]
        self.reads += 1
        return client.V1Job(metadata=client.V1ObjectMeta(name=name, namespace=namespace), status=status)

    def list_namespaced_pod(self, namespace, label_selector, **_):
        assert label_selector.startswith("job-name=")
        return SimpleNamespace(items=self.pods)

    def read_namespaced_pod_log(self, name, namespace, follow, _preload_content, **_):
        assert follow is True and _preload_content is False
        chunks = self.logs[name]
        return SimpleNamespace(stream=lambda: iter(chunks), release_conn=lambda: None)


def status(active=0, succeeded=0, failed=0, condition=None, message=None):
    conds = [client.V1JobCondition(type=condition, status="True", message=message)] if condition else None
    return client.V1JobStatus(active=active, succeeded=succeeded, failed=failed, conditions=conds)


def pod(name, phase):
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), status=client.V1PodStatus(phase=phase))


@pytest.fixture
def fake_cluster(monkeypatch):
    """Patch the client's API classes and credential loaders; yields the fake server."""
    fake = FakeApi(statuses=[status(active=1), status(succeeded=1, condition="Complete")])
    def forward(method):
        return lambda self, *args, **kwargs: getattr(fake, method)(*args, **kwargs)

    for method in ("create_namespaced_job", "read_namespaced_job_status"):
        monkeypatch.setattr(client.BatchV1Api, method, forward(method))
    for method in ("list_namespaced_pod", "read_namespaced_pod_log"):
        monkeypatch.setattr(client.CoreV1Api, method, forward(method))
    loaded = []
    monkeypatch.setattr(config, "load_incluster_config", lambda: loaded.append("incluster"))
    monkeypatch.setattr(launcher.time, "sleep", lambda s: None)
    fake.loaded = loaded
    return fake


def test_submit_sends_the_built_job_and_waits_for_completion(fake_cluster):
    out = io.StringIO()
    progress = []
    result = launch_job("tune", ["--trials", "2"], overlay="gke", name="tune-x", namespace="lab", out=out,
                        on_progress=progress.append, poll=0)
    assert fake_cluster.loaded == ["incluster"]
    [(namespace, body)] = fake_cluster.created
    assert namespace == "lab" and isinstance(body, client.V1Job)
    assert body == build_job("tune", ["--trials", "2"], overlay="gke", name="tune-x", namespace="lab")
    assert result.submitted and result.outcome == "Complete"
    assert [(p.active, p.succeeded) for p in progress] == [(1, 0), (0, 1)]
    assert progress[0].completions == 4
    assert "job lab/tune-x created" in out.getvalue() and "tune-x: Complete" in out.getvalue()


def test_dry_run_contacts_nothing(fake_cluster):
    out = io.StringIO()
    result = launch_job("retrain", None, overlay="local", dry_run=True, out=out, name="r-1")
    assert not result.submitted and fake_cluster.created == [] and fake_cluster.loaded == []
    assert yaml.safe_load(out.getvalue())["metadata"]["annotations"] == {
        "cronjob.kubernetes.io/instantiate": "manual"}


def test_failed_job_raises_with_the_server_reason(fake_cluster):
    fake_cluster.statuses = [status(active=1), status(failed=2, condition="Failed",
                                                      message="Job has reached the specified backoff limit")]
    with pytest.raises(JobFailedError, match="backoff limit"):
        launch_job("train", None, overlay="gke", out=io.StringIO(), poll=0)


def test_wait_times_out_with_a_clear_message(fake_cluster):
    fake_cluster.statuses = [status(active=1)]
    with pytest.raises(BcistreamError, match="still running after 0.01 s"):
        launch_job("train", None, overlay="gke", out=io.StringIO(), poll=0, timeout=0.01)


def test_logs_are_streamed_per_pod(fake_cluster):
    fake_cluster.pods = [pod("t-1-abc", "Running"), pod("t-0-xyz", "Succeeded"), pod("t-2-new", "Pending")]
    fake_cluster.logs = {"t-0-xyz": [b"trial 0 ", b"done\nbest=0.7"], "t-1-abc": [b"trial 1\n"]}
    out = io.StringIO()
    launch_job("tune", None, overlay="gke", name="t", logs=True, out=out, poll=0)
    text = out.getvalue()
    assert "[t-0-xyz] trial 0 done\n[t-0-xyz] best=0.7\n[t-1-abc] trial 1\n" in text
    assert "t-2-new" not in text  # still pending: no log yet


def test_api_errors_become_one_line_with_a_hint(fake_cluster):
    fake_cluster.create_error = client.ApiException(status=403, reason="Forbidden")
    with pytest.raises(BcistreamError, match="HTTP 403 Forbidden .*bcistream-launcher Role"):
        launch_job("train", None, overlay="gke", out=io.StringIO())


def test_unreachable_api_server_is_a_clear_error(fake_cluster):
    import urllib3

    fake_cluster.create_error = urllib3.exceptions.MaxRetryError(None, "/apis/batch/v1", "refused")
    with pytest.raises(BcistreamError, match="cannot reach the Kubernetes API server"):
        launch_job("train", None, overlay="gke", out=io.StringIO())


def test_no_credentials_is_a_clear_error(monkeypatch, tmp_path, capsys):
    def no_cluster():
        raise config.ConfigException("Service host/port is not set.")

    monkeypatch.setattr(config, "load_incluster_config", no_cluster)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    assert main(["k8s", "submit", "retrain", "--overlay", "local"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Kubernetes credentials") and "--dry-run" in err


# --- the --on k8s hook for train / tune / retrain ----------------------------------------------


def _demo_command(recorded: list):
    """A stand-in for `bcistream train` wired as docs/kubernetes.md tells the command authors."""
    demo = typer.Typer()

    @demo.command()
    def train(ctx: typer.Context, data: str = "", subject: str = "1", promote: bool = True,
              set_: Annotated[list[str] | None, typer.Option("--set")] = None, on: OnOption = "local",
              namespace: NamespaceOption = None, dry_run: DryRunOption = False) -> None:
        recorded.append(args_from_context(ctx))
        if on == "k8s":
            raise typer.Exit(run_on_k8s("train", ctx=ctx, overlay="local"))

    return typer.main.get_command(demo)


def test_on_k8s_forwards_the_users_arguments(capsys):
    recorded = []
    cmd = _demo_command(recorded)
    cmd.main(["--data", "gs://b/d", "--no-promote", "--set", "C=2", "--set", "n_components=4", "--on", "k8s",
              "--dry-run", "--namespace", "lab"], standalone_mode=False)
    forwarded = ["--data", "gs://b/d", "--no-promote", "--set", "C=2", "--set", "n_components=4"]
    assert recorded == [forwarded]
    job = yaml.safe_load(capsys.readouterr().out)
    # The template's --subject all stays: the user did not give --subject.
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["train", "--subject", "all", *forwarded]
    assert job["metadata"]["namespace"] == "lab"


def test_args_from_context_skips_defaults():
    recorded = []
    assert _demo_command(recorded).main(["--on", "local"], standalone_mode=False) is None
    assert recorded == [[]]
