"""Tests of charts/fanout, offline: render with the Helm SDK, lint in strict mode,
validate every manifest against Kubernetes schemas in strict mode, and check that bad
values are refused by values.schema.json.

    python3 -m pip install helm-python-sdk kubernetes-validate
    python3 -m unittest discover -s tests/chart -v

Kinds that kubernetes-validate has no schema for (the CRDs ServiceMonitor, PodMonitor,
HTTPRoute) are validated against the JSON schemas of tests/chart/crd_schemas/, which
cover the subset of those APIs the chart uses. Any kind with neither fails the test.
"""

import copy
import json
import math
import os
import re
import shutil
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import render  # noqa: E402
from value_sets import ALL_OPTIONAL, VALUE_SETS  # noqa: E402

try:
    import jsonschema
    import kubernetes_validate
except ImportError as e:  # a clear failure, never a skip
    raise SystemExit(
        f"kubernetes-validate is not installed ({e}); run: python3 -m pip install kubernetes-validate"
    ) from e

HELM = render.helm()
# The newest Kubernetes the validator has schemas for, and the oldest the chart supports
# that it still bundles schemas for.
KUBE_VERSIONS = [f"{kubernetes_validate.latest_version()}.0", "1.29.0"]
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring-v1.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-gateway-v1.json",
}
HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = ("Deployment", "StatefulSet")


def merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def one(objs, kind, name):
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name}, found {len(found)}")
    return found[0]


def pod_specs(objs):
    for o in objs:
        if o["kind"] in WORKLOADS:
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]
        elif o["kind"] == "Pod":
            yield f"Pod/{o['metadata']['name']}", o["spec"]


def container(objs, kind, name):
    return one(objs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def config_of(objs, role):
    cm = one(objs, "ConfigMap", f"demo-fanout-{role}-config")
    return yaml.safe_load(cm["data"]["config.yaml"])


class Rendering(unittest.TestCase):
    def test_every_value_set_renders(self):
        for name, values in VALUE_SETS.items():
            with self.subTest(values=name):
                objs = render.manifests(values)
                kinds = sorted({o["kind"] for o in objs})
                print(f"\n  {name}: {len(objs)} objects: {', '.join(kinds)}")
                for kind in ("Deployment", "StatefulSet", "Service", "ConfigMap", "Role", "RoleBinding"):
                    self.assertIn(kind, kinds)

    def test_all_optional_renders_every_optional_object(self):
        objs = render.manifests(ALL_OPTIONAL)
        kinds = {o["kind"] for o in objs}
        for kind in (
            "Ingress",
            "HTTPRoute",
            "ServiceMonitor",
            "PodMonitor",
            "NetworkPolicy",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
        ):
            self.assertIn(kind, kinds)
        self.assertEqual(len(by_kind(objs, "NetworkPolicy")), 3)
        self.assertEqual(len(by_kind(objs, "PodDisruptionBudget")), 3)

    def test_lint_is_clean_in_strict_mode(self):
        # The NATS dependency is declared in Chart.yaml but, by design, not vendored
        # into charts/ (and this test downloads nothing). Helm lint reports a declared
        # dependency that is missing from charts/ as an error, so the lint runs on a
        # copy of the chart whose Chart.yaml leaves the optional dependency out. Every
        # other lint rule runs on the chart as it is.
        print(
            "\n  note: linting a copy without the optional `nats` dependency "
            "(not vendored, no download); its declaration is checked by "
            "test_nats_is_an_optional_dependency"
        )
        with tempfile.TemporaryDirectory() as tmp:
            chart = os.path.join(tmp, "fanout")
            shutil.copytree(render.CHART, chart)
            path = os.path.join(chart, "Chart.yaml")
            with open(path) as f:
                meta = yaml.safe_load(f)
            meta.pop("dependencies", None)
            with open(path, "w") as f:
                yaml.safe_dump(meta, f, sort_keys=False)
            for name, values in VALUE_SETS.items():
                with self.subTest(values=name):
                    report = HELM.lint(chart, values, strict=True, kube_version="v1.33.0")
                    problems = [m for m in report["messages"] if m["severity"] >= 2]
                    self.assertEqual(report["errors"], [], report)
                    self.assertEqual(problems, [], report)

    def test_nats_is_an_optional_dependency(self):
        with open(os.path.join(render.CHART, "Chart.yaml")) as f:
            meta = yaml.safe_load(f)
        deps = {d["name"]: d for d in meta.get("dependencies", [])}
        self.assertIn("nats", deps)
        self.assertEqual(deps["nats"]["condition"], "nats.enabled")
        self.assertTrue(deps["nats"]["repository"].startswith("https://"))
        charts_dir = os.path.join(render.CHART, "charts")
        vendored = os.listdir(charts_dir) if os.path.isdir(charts_dir) else []
        self.assertEqual(vendored, [], "no dependency tarballs are vendored into charts/")
        with open(os.path.join(render.CHART, "values.yaml")) as f:
            self.assertFalse(yaml.safe_load(f)["nats"]["enabled"])

    def test_external_nats_url_reaches_every_role(self):
        url = VALUE_SETS["external-nats"]["externalNats"]["url"]
        objs = render.manifests(VALUE_SETS["external-nats"])
        for role in ("edge", "router", "worker"):
            self.assertEqual(config_of(objs, role)["nats_url"], url)


class KubernetesSchemas(unittest.TestCase):
    def test_every_manifest_validates_in_strict_mode(self):
        crd_validated = set()
        for name, values in VALUE_SETS.items():
            for obj in render.manifests(values):
                what = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
                key = (obj["apiVersion"], obj["kind"])
                for version in KUBE_VERSIONS:
                    with self.subTest(manifest=what, kube=version):
                        try:
                            kubernetes_validate.validate(obj, version, strict=True)
                        except kubernetes_validate.SchemaNotFoundError:
                            self.assertIn(
                                key, CRD_SCHEMAS, f"{what}: no Kubernetes or CRD schema for {key}"
                            )
                            with open(os.path.join(HERE, "crd_schemas", CRD_SCHEMAS[key])) as f:
                                schema = json.load(f)
                            jsonschema.Draft202012Validator(schema).validate(obj)
                            crd_validated.add(key)
                        except kubernetes_validate.ValidationError as e:
                            self.fail(f"{what} is invalid for Kubernetes {version}: {e}")
        print(
            "\n  CRDs validated against tests/chart/crd_schemas (their used subset): "
            + ", ".join(sorted(kind for _, kind in crd_validated))
        )
        self.assertEqual(crd_validated, set(CRD_SCHEMAS))

    def test_crd_schemas_refuse_a_broken_object(self):
        objs = render.manifests(ALL_OPTIONAL)
        route = copy.deepcopy(by_kind(objs, "HTTPRoute")[0])
        route["spec"]["rules"][0]["timeouts"]["request"] = "forever"
        with open(os.path.join(HERE, "crd_schemas", CRD_SCHEMAS[(route["apiVersion"], "HTTPRoute")])) as f:
            schema = json.load(f)
        with self.assertRaises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schema).validate(route)


class RejectedValues(unittest.TestCase):
    """Every refusal in values.schema.json, one case each."""

    CASES = {
        "unknown top-level key": {"edeg": {"replicas": 2}},
        "unknown role key": {"edge": {"replica": 2}},
        "negative edge replicas": {"edge": {"replicas": -1}},
        "replicas as a string": {"edge": {"replicas": "two"}},
        "zero routers": {"router": {"replicas": 0}},
        "negative PDB maxUnavailable": {"edge": {"pdb": {"maxUnavailable": -1}}},
        "PDB percentage without %": {"worker": {"pdb": {"maxUnavailable": "50"}}},
        "negative PDB minAvailable": {"router": {"pdb": {"minAvailable": -2}}},
        "zero partitions": {"partitions": 0},
        "NATS URL without a scheme": {"externalNats": {"url": "nats.messaging:4222"}},
        "NATS URL with a wrong scheme": {"externalNats": {"url": "http://nats:4222"}},
        "nats.enabled not a boolean": {"nats": {"enabled": "yes"}},
        "bad pull policy": {"image": {"pullPolicy": "Sometimes"}},
        "port out of range": {"edge": {"ports": {"http": 70000}}},
        "port zero": {"router": {"ports": {"grpc": 0}}},
        "negative drain window": {"edge": {"drainWindowMs": -5}},
        "negative grace period": {"edge": {"terminationGracePeriodSeconds": -1}},
        "HPA minReplicas zero": {"edge": {"autoscaling": {"minReplicas": 0}}},
        "HPA CPU target zero": {"worker": {"autoscaling": {"targetCPUUtilizationPercentage": 0}}},
        "bad monitor kind": {"router": {"monitor": {"kind": "Probe"}}},
        "bad monitor interval": {"edge": {"monitor": {"kind": "PodMonitor", "interval": "often"}}},
        "bad service type": {"edge": {"service": {"type": "ExternalName"}}},
        "bad externalTrafficPolicy": {"edge": {"service": {"externalTrafficPolicy": "Nearest"}}},
        "ingress on without hosts": {"edge": {"ingress": {"enabled": True, "hosts": []}}},
        "ingress path without /": {
            "edge": {"ingress": {"enabled": True, "hosts": [{"host": "a", "paths": [{"path": "graphql", "pathType": "Prefix"}]}]}}
        },
        "bad ingress pathType": {
            "edge": {"ingress": {"enabled": True, "hosts": [{"host": "a", "paths": [{"path": "/", "pathType": "Regex"}]}]}}
        },
        "HTTPRoute on without parentRefs": {"edge": {"httpRoute": {"enabled": True, "parentRefs": []}}},
        "bad HTTPRoute timeout": {"edge": {"httpRoute": {"timeouts": {"request": "1 hour"}}}},
        "no schema at all": {"schema": {"sdl": "", "existingConfigMap": ""}},
        "resolvers path not a .py file": {"resolvers": {"path": "/app/resolvers"}},
        "bad Python field name": {"resolvers": {"pythonFields": ["order-updated"]}},
        "OTLP endpoint without scheme": {"otlpEndpoint": "collector:4317"},
        "logJson not a boolean": {"logJson": "yes"},
        "bad resource quantity": {"edge": {"resources": {"requests": {"memory": "lots"}}}},
        "topology spread without topologyKey": {
            "defaults": {"topologySpreadConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"}]}
        },
        "bad whenUnsatisfiable": {
            "router": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "x", "whenUnsatisfiable": "Maybe"}]}
        },
        "extraEnv without a name": {"worker": {"extraEnv": [{"value": "1"}]}},
        "probe period zero": {"edge": {"probes": {"readiness": {"periodSeconds": 0}}}},
        "node selector value not a string": {"edge": {"nodeSelector": {"big": True}}},
        "image repository empty": {"worker": {"image": {"repository": ""}}},
        "imagePullSecrets without name": {"imagePullSecrets": [{}]},
        "test timeout zero": {"tests": {"timeoutSeconds": 0}},
        "fullnameOverride too long": {"fullnameOverride": "x" * 51},
        "nameOverride too long": {"nameOverride": "x" * 41},
        "too many partitions": {"partitions": 70000},
        "HPA maxReplicas zero": {"worker": {"autoscaling": {"maxReplicas": 0}}},
        "connections target not a quantity": {"edge": {"autoscaling": {"connections": {"averageValue": "many"}}}},
        "queue depth metric name empty": {"worker": {"autoscaling": {"queueDepth": {"metricName": ""}}}},
        "ingress host without paths": {"edge": {"ingress": {"enabled": True, "hosts": [{"host": "a"}]}}},
        "ingress TLS hosts not a list": {"edge": {"ingress": {"tls": [{"secretName": "s", "hosts": "a"}]}}},
        "HTTPRoute path without /": {"edge": {"httpRoute": {"path": "graphql"}}},
        "HTTPRoute parentRef without name": {"edge": {"httpRoute": {"parentRefs": [{"namespace": "gw"}]}}},
        "empty JWT issuer": {"auth": {"issuers": [""]}},
        "allowAnonymous not a boolean": {"auth": {"allowAnonymous": "true"}},
        "publishers key empty": {"publishers": {"existingSecret": "p", "key": ""}},
        "multiTenant not a boolean": {"multiTenant": 1},
        "tolerations not a list": {"defaults": {"tolerations": {"key": "a"}}},
        "podAnnotations value not a string": {"router": {"podAnnotations": {"a": 1}}},
        "serviceAccount.create not a boolean": {"serviceAccount": {"create": "yes"}},
        "unknown networkPolicy key": {"networkPolicy": {"enable": True}},
        "test subscription empty": {"tests": {"subscription": ""}},
    }

    def test_each_bad_value_is_refused_at_install(self):
        for case, values in self.CASES.items():
            with self.subTest(case=case):
                with self.assertRaises(HELM.HelmValuesError, msg=f"accepted: {case}: {values}") as caught:
                    render.render(values)
                self.assertIn("don't meet the specifications of the schema", str(caught.exception))

    def test_the_good_value_sets_are_accepted(self):
        for name, values in VALUE_SETS.items():
            with self.subTest(values=name):
                render.render(values)


class Behaviour(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = render.manifests({})
        cls.all = render.manifests(ALL_OPTIONAL)

    def test_zero_values_are_honoured(self):
        objs = render.manifests(
            {
                "edge": {"pdb": {"maxUnavailable": 0}, "drainWindowMs": 0},
                "router": {"pdb": {"maxUnavailable": 0}},
                "worker": {"autoscaling": {"enabled": False}, "replicas": 0},
            }
        )
        self.assertEqual(one(objs, "PodDisruptionBudget", "demo-fanout-edge")["spec"]["maxUnavailable"], 0)
        self.assertEqual(one(objs, "PodDisruptionBudget", "demo-fanout-router")["spec"]["maxUnavailable"], 0)
        self.assertEqual(one(objs, "Deployment", "demo-fanout-worker")["spec"]["replicas"], 0)
        edge = one(objs, "Deployment", "demo-fanout-edge")["spec"]["template"]["spec"]
        self.assertEqual(edge["terminationGracePeriodSeconds"], 15)
        self.assertEqual(config_of(objs, "edge")["drain_window_ms"], 0)
        pdb = one(
            render.manifests({"router": {"pdb": {"minAvailable": 0}}}), "PodDisruptionBudget", "demo-fanout-router"
        )
        self.assertEqual(pdb["spec"], {**pdb["spec"], "minAvailable": 0})
        self.assertNotIn("maxUnavailable", pdb["spec"])

    def test_grace_period_follows_the_drain_window(self):
        for drain_ms in (0, 1, 999, 1000, 10000, 10001, 45500):
            with self.subTest(drain_ms=drain_ms):
                objs = render.manifests({"edge": {"drainWindowMs": drain_ms}})
                spec = one(objs, "Deployment", "demo-fanout-edge")["spec"]["template"]["spec"]
                self.assertEqual(spec["terminationGracePeriodSeconds"], math.ceil(drain_ms / 1000) + 10 + 5)
        objs = render.manifests({"edge": {"terminationGracePeriodSeconds": 90}})
        spec = one(objs, "Deployment", "demo-fanout-edge")["spec"]["template"]["spec"]
        self.assertEqual(spec["terminationGracePeriodSeconds"], 90)

    def test_edge_prestop_starts_the_drain(self):
        edge = container(self.objs, "Deployment", "demo-fanout-edge")
        self.assertEqual(edge["lifecycle"]["preStop"]["httpGet"], {"path": "/drain", "port": "admin"})

    def test_probes_use_separate_endpoints_on_the_admin_port(self):
        for kind, name in (("Deployment", "demo-fanout-edge"), ("StatefulSet", "demo-fanout-router"), ("Deployment", "demo-fanout-worker")):
            with self.subTest(workload=name):
                c = container(self.objs, kind, name)
                paths = {p: c[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
                self.assertEqual(paths, {"startupProbe": "/startupz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"})
                for p in ("startupProbe", "readinessProbe", "livenessProbe"):
                    self.assertEqual(c[p]["httpGet"]["port"], "admin")
                self.assertIn("admin", [port["name"] for port in c["ports"]])

    def test_pod_security_restricted(self):
        for values in ({}, ALL_OPTIONAL):
            for what, spec in pod_specs(render.manifests(values)):
                with self.subTest(pod=what):
                    pod = spec["securityContext"]
                    self.assertTrue(pod["runAsNonRoot"])
                    self.assertGreater(pod["runAsUser"], 0)
                    self.assertEqual(pod["seccompProfile"]["type"], "RuntimeDefault")
                    self.assertNotIn("hostNetwork", spec)
                    self.assertNotIn("hostPID", spec)
                    for volume in spec.get("volumes", []):
                        self.assertNotIn("hostPath", volume)
                    for c in spec["containers"]:
                        sc = c["securityContext"]
                        self.assertIs(sc["allowPrivilegeEscalation"], False)
                        self.assertIs(sc["readOnlyRootFilesystem"], True)
                        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                        self.assertNotIn("add", sc["capabilities"])
                        self.assertNotIn("privileged", sc)

    def test_rbac_allows_exactly_the_endpointslice_watch(self):
        role = one(self.objs, "Role", "demo-fanout-membership")
        self.assertEqual(role["rules"], [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}])
        binding = one(self.objs, "RoleBinding", "demo-fanout-membership")
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": "demo-fanout", "namespace": "fanout"}])
        for kind, name in (("Deployment", "demo-fanout-edge"), ("StatefulSet", "demo-fanout-router")):
            spec = one(self.objs, kind, name)["spec"]["template"]["spec"]
            self.assertEqual(spec["serviceAccountName"], "demo-fanout")
        worker = one(self.objs, "Deployment", "demo-fanout-worker")["spec"]["template"]["spec"]
        self.assertEqual(worker["serviceAccountName"], "demo-fanout-worker")
        self.assertIs(worker["automountServiceAccountToken"], False)

    def test_router_membership_service(self):
        sts = one(self.objs, "StatefulSet", "demo-fanout-router")
        self.assertEqual(sts["spec"]["podManagementPolicy"], "Parallel")
        headless = one(self.objs, "Service", sts["spec"]["serviceName"])
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        self.assertIs(headless["spec"]["publishNotReadyAddresses"], True)
        self.assertIn("grpc", [p["name"] for p in headless["spec"]["ports"]])
        self.assertEqual(headless["spec"]["selector"], sts["spec"]["selector"]["matchLabels"])
        for role in ("edge", "router"):
            config = config_of(self.objs, role)
            self.assertEqual(config["membership"], "kubernetes")
            self.assertEqual(config["k8s_service"], headless["metadata"]["name"])
        env = {e["name"]: e for e in container(self.objs, "StatefulSet", "demo-fanout-router")["env"]}
        self.assertEqual(env["FANOUT_ROUTER_ID"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")
        client = one(self.objs, "Service", "demo-fanout-router")
        self.assertNotEqual(client["spec"].get("clusterIP"), "None")
        self.assertFalse(by_kind(self.objs, "HorizontalPodAutoscaler") == [])
        hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind(self.all, "HorizontalPodAutoscaler")}
        self.assertEqual(hpa_targets, {"demo-fanout-edge", "demo-fanout-worker"})
        self.assertIn("demo-fanout-router", {p["metadata"]["name"] for p in by_kind(self.objs, "PodDisruptionBudget")})

    def test_hpa_examples(self):
        edge = one(self.all, "HorizontalPodAutoscaler", "demo-fanout-edge")["spec"]
        self.assertEqual([m["type"] for m in edge["metrics"]], ["Resource", "Pods"])
        self.assertEqual(edge["metrics"][1]["pods"]["metric"]["name"], "fanout_edge_connections")
        self.assertIn("scaleDown", edge["behavior"])
        worker = one(self.all, "HorizontalPodAutoscaler", "demo-fanout-worker")["spec"]
        self.assertEqual([m["type"] for m in worker["metrics"]], ["Resource", "Pods"])
        self.assertEqual(worker["metrics"][1]["pods"]["metric"]["name"], "fanout_resolver_queue_depth")

    def test_checksums_roll_the_pods_that_use_a_changed_config(self):
        def annotations(values):
            objs = render.manifests(values)
            return {
                name: one(objs, kind, name)["spec"]["template"]["metadata"]["annotations"]
                for kind, name in (("Deployment", "demo-fanout-edge"), ("StatefulSet", "demo-fanout-router"), ("Deployment", "demo-fanout-worker"))
            }

        base = annotations({})
        schema = annotations({"schema": {"sdl": "type Query { a: Int }\ntype Subscription { b(x: ID!): Int @channel(key: \"b.{x}\") }\n"}})
        for name in base:
            self.assertNotEqual(base[name]["checksum/schema"], schema[name]["checksum/schema"])
        edge_only = annotations({"edge": {"config": {"max_subscriptions": 7}}})
        self.assertNotEqual(base["demo-fanout-edge"]["checksum/config"], edge_only["demo-fanout-edge"]["checksum/config"])
        self.assertEqual(base["demo-fanout-router"], edge_only["demo-fanout-router"])
        resolvers = annotations({"resolvers": {"source": "import fanout\n# v2\n"}})
        self.assertNotEqual(base["demo-fanout-worker"]["checksum/resolvers"], resolvers["demo-fanout-worker"]["checksum/resolvers"])
        self.assertEqual(base["demo-fanout-edge"], resolvers["demo-fanout-edge"])

    def test_secrets_come_from_existing_secrets(self):
        self.assertEqual(by_kind(self.all, "Secret"), [])
        edge = {e["name"]: e for e in container(self.all, "Deployment", "demo-fanout-edge")["env"]}
        self.assertEqual(edge["FANOUT_JWT_SECRET"]["valueFrom"]["secretKeyRef"], {"name": "fanout-jwt", "key": "hs256"})
        self.assertEqual(edge["FANOUT_JWT_PUBLIC_KEY_PEM"]["valueFrom"]["secretKeyRef"], {"name": "fanout-jwt", "key": "public.pem"})
        self.assertEqual(config_of(self.all, "edge")["jwks_file"], "/etc/fanout/jwt/jwks.json")
        router = {e["name"]: e for e in container(self.all, "StatefulSet", "demo-fanout-router")["env"]}
        self.assertEqual(router["FANOUT_PUBLISHER_TOKENS"]["valueFrom"]["secretKeyRef"], {"name": "fanout-publishers", "key": "tokens"})

    def test_resolvers_from_the_worker_image(self):
        self.assertEqual(config_of(self.all, "worker")["resolvers"], "/app/resolvers.py")
        self.assertEqual(config_of(self.all, "router")["python_fields"], "orderUpdated")
        self.assertNotIn("resolvers", config_of(self.all, "router"))
        self.assertEqual(by_kind(self.all, "ConfigMap") and [c["metadata"]["name"] for c in by_kind(self.all, "ConfigMap") if "resolvers" in c["metadata"]["name"]], [])
        worker = one(self.all, "Deployment", "demo-fanout-worker")["spec"]["template"]["spec"]
        self.assertEqual(worker["containers"][0]["image"], "registry.example.com/team/fanout-worker-with-deps:2024.1")

    def test_large_config_numbers_stay_integers(self):
        self.assertEqual(config_of(self.all, "edge")["max_message_bytes"], 1048576)
        self.assertEqual(config_of(self.all, "router")["max_payload_bytes"], 2097152)
        text = one(self.all, "ConfigMap", "demo-fanout-edge-config")["data"]["config.yaml"]
        self.assertNotRegex(text, r"e\+0")

    def test_network_policies(self):
        policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(self.all, "NetworkPolicy")}
        router = policies["demo-fanout-router"]["ingress"]
        grpc = [rule for rule in router if rule["ports"][0]["port"] == "grpc"][0]
        components = {f.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") for f in grpc["from"]}
        self.assertTrue({"edge", "worker"} <= components)
        self.assertIn({"app": "order-service"}, [f.get("podSelector", {}).get("matchLabels") for f in grpc["from"]])
        self.assertEqual(policies["demo-fanout-worker"]["ingress"][0]["ports"][0]["port"], "admin")
        edge = policies["demo-fanout-edge"]["ingress"][0]
        self.assertEqual(edge["from"][0]["namespaceSelector"]["matchLabels"], {"kubernetes.io/metadata.name": "ingress-nginx"})

    def test_ingress_and_httproute_carry_websocket_timeouts(self):
        ingress = one(self.all, "Ingress", "demo-fanout-edge")
        self.assertEqual(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"], "3600")
        self.assertEqual(ingress["spec"]["tls"][0]["secretName"], "fanout-example-tls")
        route = one(self.all, "HTTPRoute", "demo-fanout-edge")
        self.assertEqual(route["spec"]["rules"][0]["timeouts"]["request"], "0s")

    def test_helm_test_pod_subscribes_and_publishes(self):
        pods = by_kind(self.objs, "Pod")
        self.assertEqual(len(pods), 1)
        pod = pods[0]
        self.assertEqual(pod["metadata"]["annotations"]["helm.sh/hook"], "test")
        c = pod["spec"]["containers"][0]
        script = c["args"][0]
        self.assertIn("fanout subscribe --count 1", script)
        self.assertIn("fanout publish", script)
        env = {e["name"]: e.get("value") for e in c["env"]}
        self.assertEqual(env["FANOUT_URL"], "ws://demo-fanout-edge:80/graphql")
        self.assertEqual(env["FANOUT_SERVER"], "http://demo-fanout-router:50051")
        self.assertTrue(c["image"].endswith("fanout-worker:0.1.0"))

    def test_notes_tell_how_to_connect_publish_and_watch_metrics(self):
        notes = render.render({})["fanout/templates/NOTES.txt"]
        self.assertIn("fanout subscribe --url ws://127.0.0.1:8080/graphql", notes)
        self.assertIn("fanout publish --server http://127.0.0.1:50051", notes)
        self.assertIn("/metrics", notes)
        self.assertIn("helm test demo", notes)
        tls = render.render(VALUE_SETS["ingress-tls"])["fanout/templates/NOTES.txt"]
        self.assertIn("wss://fanout.example.com/graphql", tls)
        self.assertNotRegex(notes, re.compile(r"<no value>"))


if __name__ == "__main__":
    unittest.main()
