"""The deployment files (deploy/) agree with the code: settings, topics, endpoints, metrics.

No container engine runs here, so these files are checked by reading them: every YAML and
JSON file parses; every CDRVEIL_* variable is a setting that pipeline/settings.py reads;
topic names are those of pipeline/core/topics.py and the default policy; images are pinned;
the keyring only ever arrives as a Secret; probes, scrapes and the dashboard use what the
worker serves and defines.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core import keys, topics
from pipeline.core.policy import Policy
from pipeline.settings import DEFAULT_POLICY_PATH, ENV_PREFIX, Settings
from pipeline.shell import telemetry

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
K8S = DEPLOY / "k8s"
TEXT_SUFFIXES = {".yaml", ".yml", ".json", ".sh", ".md", ".conf", ".properties", ""}


def deploy_files(*suffixes: str) -> list[Path]:
    """Files under deploy/ with one of these suffixes (a generated secrets/ dir excluded)."""
    return sorted(
        p
        for p in DEPLOY.rglob("*")
        if p.is_file() and p.suffix in suffixes and "secrets" not in p.relative_to(DEPLOY).parts
    )


def text_files() -> list[Path]:
    """Every text file under deploy/ (YAML, JSON, shell, Markdown, the Dockerfile ...)."""
    return [p for p in deploy_files(*TEXT_SUFFIXES) if p.suffix or p.name.startswith("Dockerfile")]


def compose() -> dict[str, Any]:
    """The Compose file, anchors and merge keys resolved."""
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def k8s_objects() -> list[dict[str, Any]]:
    """Every Kubernetes object of deploy/k8s (all documents of all files)."""
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc and "kind" in doc]
    return objects


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    """One Kubernetes object by kind and name."""
    found = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template spec of a Deployment or Job."""
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Containers and init containers of a workload."""
    spec = pod_spec(obj)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def k8s_env(container: dict[str, Any]) -> dict[str, Any]:
    """A container's env as name -> value (or the valueFrom mapping)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def workloads() -> list[dict[str, Any]]:
    """The Deployments and Jobs of deploy/k8s."""
    return [o for o in k8s_objects() if o["kind"] in ("Deployment", "Job")]


def cdrveil_services() -> dict[str, dict[str, Any]]:
    """The Compose services that run the cdrveil image."""
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if str(svc.get("image", "")).startswith("cdrveil:")
    }


def setting_names() -> set[str]:
    """CDRVEIL_* variable names, read from the Settings fields as Settings.from_env does."""
    return {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}


def known_topics() -> set[str]:
    """Topic names from pipeline/core/topics.py and the default policy."""
    policy = Policy.load(DEFAULT_POLICY_PATH)
    names = {*topics.INPUTS, *topics.STATE_TOPICS, policy.dead_letter_topic, analytics_prefix()}
    return names | {route.topic for route in policy.routes.values()}


def analytics_prefix() -> str:
    """What the default policy's analytics topics have in common (a prefixed ACL covers it)."""
    policy = Policy.load(DEFAULT_POLICY_PATH)
    (prefix,) = {
        r.topic.rsplit(".", 1)[0] + "." for r in policy.routes.values() if r.kind == "analytics"
    }
    return prefix


def policy_topics() -> set[str]:
    """The output topics of the default policy's routes."""
    return {route.topic for route in Policy.load(DEFAULT_POLICY_PATH).routes.values()}


# -- every file parses -------------------------------------------------------------------------


def test_there_are_deployment_files_to_check() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in deploy_files(".yaml", ".yml", ".json")}
    assert {"compose/compose.yaml", "k8s/deployment.yaml", "grafana/dashboard.json"} <= names
    assert {"prometheus/prometheus.yml", "prometheus/alerts.yml"} <= names
    assert (DEPLOY / "Dockerfile").is_file()


@pytest.mark.parametrize(
    "path", deploy_files(".yaml", ".yml", ".json"), ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_every_yaml_and_json_file_parses(path: Path) -> None:
    if path.suffix == ".json":
        assert json.loads(path.read_text())
    else:
        assert [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# -- settings ----------------------------------------------------------------------------------


def test_every_cdrveil_variable_in_deploy_is_a_setting_the_settings_read() -> None:
    known = setting_names()
    assert "CDRVEIL_BOOTSTRAP_SERVERS" in known  # the field list was read
    used: dict[str, set[str]] = {}
    for path in text_files():
        for name in re.findall(r"\bCDRVEIL_[A-Z0-9_]+\b", path.read_text()):
            used.setdefault(name, set()).add(str(path.relative_to(DEPLOY)))
    assert used, "no CDRVEIL_ variable found in deploy/"
    unknown = {name: where for name, where in used.items() if name not in known}
    assert not unknown, f"not read by pipeline/settings.py: {unknown}"


def image_env() -> dict[str, str]:
    """The CDRVEIL_* variables the image itself sets (Dockerfile ENV)."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    return dict(re.findall(r"\b(CDRVEIL_[A-Z0-9_]+)=(\S+)", dockerfile))


def workload_envs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, env) of every container that runs cdrveil, in both stacks, over the image's."""
    for name, svc in cdrveil_services().items():
        yield f"compose:{name}", image_env() | dict(svc["environment"])
    for obj in workloads():
        for c in obj["spec"]["template"]["spec"]["containers"]:
            yield f"k8s:{obj['metadata']['name']}/{c['name']}", image_env() | k8s_env(c)


def test_the_settings_accept_every_environment_the_files_give(tmp_path: Path) -> None:
    """Settings.from_env builds from each container's env (files swapped for real ones)."""
    some_file = tmp_path / "file"
    some_file.write_text("x")
    paths = {
        ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings) if "Path" in str(f.type)
    }
    for where, env in workload_envs():
        values = {}
        for name, value in env.items():
            if not name.startswith(ENV_PREFIX):
                continue
            if name == ENV_PREFIX + "POLICY_PATH":
                value = str(DEFAULT_POLICY_PATH)
            elif name in paths:
                value = str(some_file)
            elif isinstance(value, dict):  # valueFrom a Secret
                value = "from-a-secret"
            values[name] = str(value)
        if values.get("CDRVEIL_SECURITY_PROTOCOL", "").startswith("SASL_"):
            # Compose hands the password over in the entrypoint, Kubernetes from a Secret.
            values.setdefault("CDRVEIL_SASL_PASSWORD", "from-a-secret")
        settings = Settings.from_env(values)
        assert settings.security_protocol == "SASL_SSL", where


# -- topics ------------------------------------------------------------------------------------


def test_every_topic_name_in_deploy_is_one_the_code_and_policy_know() -> None:
    known = known_topics()
    pattern = re.compile(r"(?<![\w.-])(?:cdr|consent|li|traffic)\.[A-Za-z0-9._-]+")
    found: set[str] = set()
    for path in text_files():
        for token in pattern.findall(path.read_text()):
            name = token if token in known else token.rstrip(".")  # a sentence's full stop
            assert name in known, f"{path.relative_to(DEPLOY)}: unknown topic {token!r}"
            found.add(name)
    assert policy_topics() <= found


def test_the_compose_acls_cover_every_topic_of_the_policy() -> None:
    script = (DEPLOY / "compose" / "kafka" / "init.sh").read_text()
    for topic in policy_topics() | set(topics.INPUTS) | set(topics.STATE_TOPICS):
        assert re.search(rf"(?<![\w.-]){re.escape(topic)}(?![\w.-])", script), topic
    assert f"--topic {analytics_prefix()}" in script  # the worker writes every purpose


def test_the_acl_guide_names_a_reader_for_every_output_topic() -> None:
    guide = (DEPLOY / "README.md").read_text()
    for topic in policy_topics() | {Policy.load(DEFAULT_POLICY_PATH).dead_letter_topic}:
        assert f"`{topic}`" in guide, topic


# -- images ------------------------------------------------------------------------------------

PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+(?:[.-][A-Za-z0-9.-]+)?$")


def pinned(image: str) -> bool:
    """An image reference with a digest or an exact version tag (never latest)."""
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and bool(PINNED_TAG.match(tag))


def all_images() -> list[tuple[str, str]]:
    """(where, image) for every image the files run or build from."""
    images = [(f"compose:{n}", s["image"]) for n, s in compose()["services"].items()]
    for obj in workloads():
        images += [(f"k8s:{obj['metadata']['name']}", c["image"]) for c in containers(obj)]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.MULTILINE))
    for ref in re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE):
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref)
        images.append(("Dockerfile", image))
    return images


def test_the_pin_check_tells_pinned_from_floating_images() -> None:
    assert pinned("apache/kafka:3.9.1")
    assert pinned("python:3.11.13-slim-bookworm")
    assert pinned("python@sha256:" + "a" * 64)
    for floating in ("apache/kafka", "apache/kafka:latest", "python:3.11-slim", "grafana:12"):
        assert not pinned(floating), floating


def test_every_image_is_pinned() -> None:
    images = all_images()
    assert len(images) >= 8
    floating = [(where, image) for where, image in images if not pinned(image)]
    assert not floating


# -- the keyring -------------------------------------------------------------------------------


def test_no_file_under_deploy_holds_a_keyring() -> None:
    for path in text_files():
        assert keys.FORMAT not in path.read_text(), path


def test_the_keyring_is_never_in_a_configmap_or_an_environment_variable() -> None:
    for obj in k8s_objects():
        if obj["kind"] == "ConfigMap":
            for key, value in obj.get("data", {}).items():
                assert "keyring" not in key.lower()
                assert keys.FORMAT not in value
    for obj in workloads():
        for c in containers(obj):
            for name, value in k8s_env(c).items():
                assert "KEYRING" not in name or name == "CDRVEIL_KEYRING_PATH", name
                ref = json.dumps(value)
                assert "keyring" not in ref or name == "CDRVEIL_KEYRING_PATH", name
            assert "envFrom" not in c
    for name, svc in compose()["services"].items():
        for var, value in dict(svc.get("environment", {})).items():
            assert "KEYRING" not in var or str(value).startswith("/run/secrets/"), (name, var)
        for volume in svc.get("volumes", []):
            assert "keyring" not in str(volume), (name, volume)


def test_the_image_gets_no_keyring_or_secret() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    sources = re.findall(r"^(?:COPY|ADD)(?! --from)\s+(.+)\s+\S+$", dockerfile, re.MULTILINE)
    copied = {part for line in sources for part in line.split() if not part.startswith("--")}
    assert copied == {"pyproject.toml", "README.md", "pipeline"}
    assert not re.search(r"^ENV .*(KEYRING|PASSWORD|SECRET)", dockerfile, re.MULTILINE)
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert "**/*keyring*" in ignore


def test_the_compose_keyring_is_a_compose_secret_at_the_configured_path() -> None:
    doc = compose()
    assert "file" in doc["secrets"]["keyring"]
    worker = doc["services"]["worker"]
    path = worker["environment"]["CDRVEIL_KEYRING_PATH"]
    targets = {s["target"] for s in worker["secrets"] if isinstance(s, dict)}
    assert path.startswith("/run/secrets/") and path.removeprefix("/run/secrets/") in targets
    assert {"source": "keyring", "target": path.removeprefix("/run/secrets/")} in worker["secrets"]
    for name, svc in doc["services"].items():
        if name != "worker":
            assert "keyring" not in json.dumps(svc.get("secrets", [])), name


def test_the_k8s_keyring_comes_read_only_from_a_secret_with_mode_0400() -> None:
    spec = pod_spec(k8s_object("Deployment", "cdrveil-worker"))
    volumes = {v["name"]: v for v in spec["volumes"]}
    worker = spec["containers"][0]
    path = Path(k8s_env(worker)["CDRVEIL_KEYRING_PATH"])
    (mount,) = [m for m in worker["volumeMounts"] if m["mountPath"] == str(path.parent)]
    assert mount.get("readOnly") is True
    volume = volumes[mount["name"]]
    if "secret" in volume:  # mounted directly
        sources = [volume]
    else:  # copied by an init container to a memory-backed volume, owner-only
        assert volume["emptyDir"]["medium"] == "Memory"
        fillers = [
            c
            for c in spec["initContainers"]
            if any(m["name"] == mount["name"] for m in c["volumeMounts"])
        ]
        assert fillers
        sources = [
            volumes[m["name"]]
            for c in fillers
            for m in c["volumeMounts"]
            if m["name"] != mount["name"]
        ]
        reads = [m for c in fillers for m in c["volumeMounts"] if m["name"] != mount["name"]]
        assert all(m.get("readOnly") for m in reads)
        assert all("0400" in c["command"] for c in fillers)
    assert sources
    for source in sources:
        assert source["secret"]["defaultMode"] == 0o400
        assert source["secret"]["secretName"] == "cdrveil-keyring"


# -- endpoints ---------------------------------------------------------------------------------


def test_k8s_probes_and_scrape_use_the_paths_and_port_the_worker_serves() -> None:
    deployment = k8s_object("Deployment", "cdrveil-worker")
    worker = pod_spec(deployment)["containers"][0]
    port = int(k8s_env(worker)["CDRVEIL_WEB_PORT"])
    (named,) = [p for p in worker["ports"] if p["name"] == "http"]
    assert named["containerPort"] == port
    assert worker["readinessProbe"]["httpGet"]["path"] == telemetry.READY_PATH
    assert worker["livenessProbe"]["httpGet"]["path"] == telemetry.HEALTH_PATH
    # Start-up lasts until ready (tables loaded): /healthz answers at once, so it cannot.
    assert worker["startupProbe"]["httpGet"]["path"] == telemetry.READY_PATH
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert worker[probe]["httpGet"]["port"] in ("http", port)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == telemetry.METRICS_PATH
    assert int(annotations["prometheus.io/port"]) == port
    assert k8s_env(worker)["CDRVEIL_WEB_HOST"] == "0.0.0.0"  # noqa: S104 - probes come from outside


def test_compose_prometheus_and_the_image_healthcheck_use_the_worker_endpoints() -> None:
    worker_env = compose()["services"]["worker"]["environment"]
    port = int(worker_env["CDRVEIL_WEB_PORT"])
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "cdrveil-worker"]
    assert job["metrics_path"] == telemetry.METRICS_PATH
    assert job["dns_sd_configs"][0]["port"] == port
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("ENTRYPOINT")[0]
    assert telemetry.READY_PATH in healthcheck
    assert "ENV PATH=/opt/cdrveil/bin:$PATH" in dockerfile
    assert re.search(rf"CDRVEIL_WEB_PORT={port}\b", dockerfile)
    assert 'ENTRYPOINT ["cdrveil"]' in dockerfile and 'CMD ["worker"]' in dockerfile
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)


# -- Kafka security and durability -------------------------------------------------------------


def test_both_stacks_talk_sasl_ssl_to_kafka() -> None:
    envs = list(workload_envs())
    assert len(envs) >= 4
    for where, env in envs:
        assert env["CDRVEIL_SECURITY_PROTOCOL"] == "SASL_SSL", where
        assert env["CDRVEIL_SASL_MECHANISM"].startswith("SCRAM-"), where
        assert env["CDRVEIL_SSL_CAFILE"], where
        if where.startswith("k8s:"):
            assert env["CDRVEIL_SASL_PASSWORD"]["secretKeyRef"]["key"] == "password", where
    for name, svc in cdrveil_services().items():
        # Compose: the password comes from the service's secret file, read at start.
        assert "CDRVEIL_SASL_PASSWORD" not in svc["environment"], name
        script = " ".join(svc["entrypoint"])
        assert 'CDRVEIL_SASL_PASSWORD="$$(cat /run/secrets/sasl_password)"' in script, name
        targets = [s.get("target") for s in svc["secrets"] if isinstance(s, dict)]
        assert "sasl_password" in targets, name


def kafka_brokers() -> dict[str, dict[str, Any]]:
    """The Kafka broker services of the Compose file."""
    services = compose()["services"].items()
    return {n: s for n, s in services if "KAFKA_NODE_ID" in s.get("environment", {})}


def listener_protocols(env: dict[str, Any]) -> dict[str, str]:
    """A broker's listener name -> security protocol map."""
    pairs = (p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    return {name: protocol for name, protocol in pairs}


def test_compose_runs_three_kraft_brokers_with_sasl_ssl_listeners_only() -> None:
    brokers = kafka_brokers()
    assert len(brokers) == 3
    assert len({b["environment"]["KAFKA_NODE_ID"] for b in brokers.values()}) == 3
    for name, broker in brokers.items():
        env = broker["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
        protocols = listener_protocols(env)
        listeners = [entry.split("://")[0] for entry in env["KAFKA_LISTENERS"].split(",")]
        assert {protocols[listener] for listener in listeners} == {"SASL_SSL"}, name
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        # The image drops any KAFKA_* value holding '=' when it writes the properties.
        for var, value in env.items():
            if var.startswith("KAFKA_") and var != "KAFKA_OPTS":
                assert "=" not in str(value), (name, var)
    advertised = {
        entry.split("://")[1]: entry.split("://")[0]
        for b in brokers.values()
        for entry in b["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    protocols = listener_protocols(next(iter(brokers.values()))["environment"])
    for name, svc in cdrveil_services().items():
        for server in svc["environment"]["CDRVEIL_BOOTSTRAP_SERVERS"].split(","):
            assert protocols[advertised[server]] == "SASL_SSL", (name, server)


def test_compose_replicates_three_times_with_two_in_sync_replicas() -> None:
    for name, broker in kafka_brokers().items():
        env = broker["environment"]
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3, name
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2, name
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 3, name
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == 3, name
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 2, name
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false", name
    assert cdrveil_services()["topics"]["environment"]["CDRVEIL_REPLICATION_FACTOR"] == "3"
    job = pod_spec(k8s_object("Job", "cdrveil-topics"))["containers"][0]
    assert k8s_env(job)["CDRVEIL_REPLICATION_FACTOR"] == "3"
    assert cdrveil_services()["topics"]["command"] == ["topics", "create"]
    assert job["args"] == ["topics", "create"]


# -- workers, partitions, pods -----------------------------------------------------------------


def test_no_more_workers_than_partitions_by_default() -> None:
    job = pod_spec(k8s_object("Job", "cdrveil-topics"))["containers"][0]
    partitions = int(k8s_env(job)["CDRVEIL_PARTITIONS"])
    hpa = k8s_object("HorizontalPodAutoscaler", "cdrveil-worker")
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= partitions
    services = cdrveil_services()
    replicas = re.fullmatch(r"\$\{\w+:-(\d+)\}", str(services["worker"]["deploy"]["replicas"]))
    assert replicas is not None
    assert int(replicas.group(1)) <= int(services["topics"]["environment"]["CDRVEIL_PARTITIONS"])


def test_k8s_pods_run_non_root_on_a_read_only_root_and_stop_gracefully() -> None:
    for obj in workloads():
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        for c in containers(obj):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, c["name"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, c["name"]
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], c["name"]
            assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]
    deployment = pod_spec(k8s_object("Deployment", "cdrveil-worker"))
    assert deployment["terminationGracePeriodSeconds"] >= 30
    assert "replicas" not in k8s_object("Deployment", "cdrveil-worker")["spec"]  # the HPA's


def test_the_worker_network_policy_allows_kafka_dns_and_prometheus_only() -> None:
    policy = k8s_object("NetworkPolicy", "cdrveil-worker")["spec"]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {9094, 53}
    bootstrap = k8s_env(pod_spec(k8s_object("Deployment", "cdrveil-worker"))["containers"][0])
    assert all(s.endswith(":9094") for s in bootstrap["CDRVEIL_BOOTSTRAP_SERVERS"].split(","))
    (ingress,) = policy["ingress"]
    assert [p["port"] for p in ingress["ports"]] == [6066]
    source = ingress["from"][0]["podSelector"]["matchLabels"]
    assert source["app.kubernetes.io/name"] == "prometheus"
    deny = k8s_object("NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}


def test_the_policy_configmap_is_the_default_policy() -> None:
    configmap = k8s_object("ConfigMap", "cdrveil-policy")
    assert configmap["data"]["policy.toml"] == DEFAULT_POLICY_PATH.read_text(), (
        "deploy/k8s/configmap-policy.yaml differs from pipeline/policies/default.toml"
    )
    worker = pod_spec(k8s_object("Deployment", "cdrveil-worker"))["containers"][0]
    assert k8s_env(worker)["CDRVEIL_POLICY_PATH"].endswith("/policy.toml")


# -- metrics -----------------------------------------------------------------------------------


def defined_metrics() -> tuple[set[str], set[str]]:
    """(family names, sample names) of pipeline/shell/telemetry.py, from a rendered scrape."""
    m = telemetry.Metrics()
    m.record_batch(
        {"cdr.voice": 1}, {"billing": 1}, {"bad_imei": 1}, [0.01], 0.01, {"service_code": 1}
    )
    m.record_state_messages("consent.state", 1)
    m.record_withheld({("network_planning", "objection"): 1})
    m.record_unknown_fields("consent.state", {"objection": 1})
    m.record_commit_failure()
    m.record_resends(1)
    m.record_transaction_recovery("producer_fenced")
    m.set_tables(1, 1, 1.0, 1.0)
    m.set_lag({("cdr.voice", 0): 1})
    m.set_active_key("k1")
    m.set_ready(True)
    body, _ = m.render()
    families = list(text_string_to_metric_families(body.decode()))
    return {f.name for f in families}, {s.name for f in families for s in f.samples}


def used_metrics(text: str) -> set[str]:
    """cdrveil_* names in a text of PromQL."""
    return set(re.findall(r"\bcdrveil_[a-z0-9_]+\b", text))


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the Grafana dashboard."""
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_dashboard_uses_only_metrics_the_worker_defines() -> None:
    _, samples = defined_metrics()
    used = used_metrics("\n".join(dashboard_exprs()))
    assert used
    assert used <= samples, used - samples


def test_the_dashboard_shows_every_metric_the_worker_defines() -> None:
    families, _ = defined_metrics()
    used = used_metrics("\n".join(dashboard_exprs()))
    hidden = {
        family
        for family in families
        if not family.endswith("_created")
        and not any(name == family or name.startswith(family + "_") for name in used)
    }
    assert not hidden


def test_alert_rules_use_only_metrics_the_worker_defines() -> None:
    _, samples = defined_metrics()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = used_metrics("\n".join(exprs))
    assert {"cdrveil_dead_letters_total", "cdrveil_consumer_lag", "cdrveil_ready"} <= used
    assert used <= samples, used - samples


def test_the_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    """Grafana keys panels by id (a repeated one is dropped or swapped) and lays them on a
    24-column grid; two panels on the same cells hide each other."""
    panels = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for y in range(box["y"], box["y"] + box["h"]):
            for x in range(box["x"], box["x"] + box["w"]):
                assert (x, y) not in taken, (panel["title"], taken.get((x, y)))
                taken[(x, y)] = panel["title"]
