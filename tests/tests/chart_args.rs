//! The Helm chart's manifests start working processes: renders charts/fanout with its
//! default values (tests/chart/render.py, the Helm SDK), takes each role's container
//! (entrypoint, args, env, ports, probes, mounted ConfigMaps) from the rendered YAML,
//! starts the three role binaries of this checkout exactly so, and checks every probe
//! the manifests name answers 200 on the admin port they name.
//!
//! Then it runs the `helm test` Pod's script against them: it subscribes through the
//! edge Service, publishes through the router Service and must receive the event.
//!
//! Only what cannot exist outside a cluster is substituted, and each substitution is
//! printed:
//! - mounted ConfigMaps (and emptyDirs) → temp directories holding the rendered data;
//!   their mount paths are rewritten to those directories wherever they appear;
//! - the listen ports the manifests give (`0.0.0.0:PORT`) → `127.0.0.1` with ephemeral
//!   ports, since the three pods share one network namespace here;
//! - the in-cluster NATS URL → a `nats-server` started by the test; Service DNS names
//!   (`demo-fanout-edge:80`) in the test Pod → the loopback port of the pod behind them;
//!   the test Pod's `/tmp` (an emptyDir) → a temp directory;
//! - downward-API env (`metadata.name`, `metadata.namespace`) → the names the pods
//!   would have (`demo-fanout-router-0`, ...);
//! - the in-cluster service account of pods that mount one → `KUBECONFIG` naming a fake
//!   Kubernetes API (`fanout_tests::kube_api`) that serves the EndpointSlice the
//!   EndpointSlice controller would publish for the router headless Service as
//!   rendered: one router pod, not yet ready (so `ready` is what
//!   `publishNotReadyAddresses` makes it, `serving` false), on the port named in the
//!   Service.
//!
//! python3 with helm-python-sdk is required (tests/run.sh installs it); without it this
//! test fails, it never skips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fanout_tests::binary::workspace_root;
use fanout_tests::cluster::{Nats, Proc, START_TIMEOUT, cluster_bins, free_port};
use fanout_tests::kube_api::FakeKubeApi;
use fanout_tests::metrics::http_get;
use fanout_tests::{Result, anyhow, bail, ensure, json};
use serde::Deserialize as _;
use serde_yaml::Value as Yaml;

const RELEASE: &str = "demo";
const NAMESPACE: &str = "fanout";

/// Renders the chart with `values` (JSON) through tests/chart/render.py.
fn render(values: &str) -> Result<Vec<Yaml>> {
    let root = workspace_root();
    let script = root.join("tests/chart/render.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--values", values, "--name", RELEASE, "--namespace", NAMESPACE])
        .current_dir(&root)
        .output()
        .context("cannot run python3 (needed to render the chart; tests/run.sh installs helm-python-sdk)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(3) => bail!(
            "helm-python-sdk is missing: python3 -m pip install helm-python-sdk (tests/run.sh does)\n{stderr}"
        ),
        _ => bail!("{} failed ({}):\n{stderr}", script.display(), out.status),
    }
    let text = String::from_utf8(out.stdout).context("render.py printed non-UTF-8")?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Yaml::deserialize(doc).context("render.py printed invalid YAML")?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    ensure!(!docs.is_empty(), "render.py printed no manifests");
    Ok(docs)
}

fn str_at<'a>(v: &'a Yaml, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Yaml::as_str)
}

fn at<'a>(v: &'a Yaml, path: &[&str]) -> Option<&'a Yaml> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn seq<'a>(v: &'a Yaml, path: &[&str]) -> &'a [Yaml] {
    at(v, path)
        .and_then(Yaml::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn find<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> Result<&'a Yaml> {
    docs.iter()
        .find(|d| {
            str_at(d, &["kind"]) == Some(kind) && str_at(d, &["metadata", "name"]) == Some(name)
        })
        .ok_or_else(|| anyhow!("the chart rendered no {kind} {name}"))
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("fanout-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// String replacements applied to args, env values and mounted file contents.
#[derive(Default)]
struct Substitutions {
    pairs: Vec<(String, String)>,
}

impl Substitutions {
    fn add(&mut self, from: impl Into<String>, to: impl Into<String>, why: &str) {
        let (from, to) = (from.into(), to.into());
        println!("substituted ({why}): {from} -> {to}");
        self.pairs.push((from, to));
        // Longest first, so `/etc/fanout/config` never eats part of a longer path.
        self.pairs
            .sort_by_key(|pair| std::cmp::Reverse(pair.0.len()));
    }

    fn apply(&self, text: &str) -> String {
        // One pass over the text so a replacement is never replaced again.
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'outer: while !rest.is_empty() {
            for (from, to) in &self.pairs {
                if let Some(tail) = rest.strip_prefix(from.as_str()) {
                    out.push_str(to);
                    rest = tail;
                    continue 'outer;
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
        out
    }
}

/// One role as its manifest says to run it.
struct Launch {
    role: &'static str,
    pod_name: String,
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The probes: (kind, path, container port).
    probes: Vec<(&'static str, String, u16)>,
    /// Container port by name.
    ports: BTreeMap<String, u16>,
    /// Whether the pod mounts a service account token (talks to the Kubernetes API).
    api_access: bool,
    /// ConfigMap files to write: (mount path, file name, data).
    files: Vec<(String, String, String)>,
    /// emptyDir mount paths.
    empty_dirs: Vec<String>,
}

fn launch(
    docs: &[Yaml],
    kind: &str,
    name: &str,
    role: &'static str,
    pod_name: &str,
    bin: &Path,
) -> Result<Launch> {
    let workload = find(docs, kind, name)?;
    let pod = at(workload, &["spec", "template", "spec"])
        .ok_or_else(|| anyhow!("{name}: no pod spec"))?;
    let containers = seq(pod, &["containers"]);
    ensure!(
        containers.len() == 1,
        "{name}: expected one container, found {}",
        containers.len()
    );
    let c = &containers[0];
    let image = str_at(c, &["image"]).ok_or_else(|| anyhow!("{name}: no image"))?;
    // The image's entrypoint is its role binary (deploy/docker/*.Dockerfile).
    let image_name = image
        .rsplit('/')
        .next()
        .and_then(|last| last.split(':').next())
        .unwrap_or_default();
    let expected = bin.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    ensure!(
        image_name == expected,
        "{name}: image {image} is not the {expected} image"
    );
    ensure!(
        at(c, &["command"]).is_none(),
        "{name}: a `command` overrides the image entrypoint"
    );
    let args = seq(c, &["args"])
        .iter()
        .map(|a| {
            a.as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("{name}: non-string arg {a:?}"))
        })
        .collect::<Result<Vec<_>>>()?;

    let mut env = Vec::new();
    for e in seq(c, &["env"]) {
        let key = str_at(e, &["name"]).ok_or_else(|| anyhow!("{name}: env without name"))?;
        if let Some(value) = e.get("value") {
            let value = value
                .as_str()
                .ok_or_else(|| anyhow!("{name}: env {key} is not a string"))?;
            env.push((key.to_owned(), value.to_owned()));
        } else if let Some(field) = str_at(e, &["valueFrom", "fieldRef", "fieldPath"]) {
            let value = match field {
                "metadata.name" => pod_name,
                "metadata.namespace" => NAMESPACE,
                other => bail!("{name}: env {key} from unsupported field {other}"),
            };
            println!("substituted (downward API {field}) for {role}: {key}={value}");
            env.push((key.to_owned(), value.to_owned()));
        } else {
            bail!(
                "{name}: env {key} has a source this test cannot provide (the default values reference no Secret)"
            );
        }
    }

    let mut ports = BTreeMap::new();
    for p in seq(c, &["ports"]) {
        let pname = str_at(p, &["name"]).ok_or_else(|| anyhow!("{name}: unnamed port"))?;
        let number = at(p, &["containerPort"])
            .and_then(Yaml::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| anyhow!("{name}: port {pname} has no containerPort"))?;
        ports.insert(pname.to_owned(), number);
    }

    let mut probes = Vec::new();
    for (probe, kind) in [
        ("startupProbe", "startup"),
        ("readinessProbe", "readiness"),
        ("livenessProbe", "liveness"),
    ] {
        let p = at(c, &[probe, "httpGet"]).ok_or_else(|| anyhow!("{name}: no {probe} httpGet"))?;
        let path = str_at(p, &["path"]).ok_or_else(|| anyhow!("{name}: {probe} without path"))?;
        let port = match p.get("port") {
            Some(Yaml::String(port_name)) => *ports
                .get(port_name)
                .ok_or_else(|| anyhow!("{name}: {probe} names unknown port {port_name}"))?,
            Some(Yaml::Number(n)) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| anyhow!("{name}: bad {probe} port"))?,
            _ => bail!("{name}: {probe} has no port"),
        };
        probes.push((kind, path.to_owned(), port));
    }

    // Volumes: ConfigMaps become files, emptyDirs directories; nothing else is expected.
    let mut files = Vec::new();
    let mut empty_dirs = Vec::new();
    for m in seq(c, &["volumeMounts"]) {
        let vname = str_at(m, &["name"]).ok_or_else(|| anyhow!("{name}: mount without name"))?;
        let mount =
            str_at(m, &["mountPath"]).ok_or_else(|| anyhow!("{name}: mount without path"))?;
        let volume = seq(pod, &["volumes"])
            .iter()
            .find(|v| str_at(v, &["name"]) == Some(vname))
            .ok_or_else(|| anyhow!("{name}: mount of unknown volume {vname}"))?;
        if let Some(cm_name) = str_at(volume, &["configMap", "name"]) {
            let cm = find(docs, "ConfigMap", cm_name)?;
            let data = at(cm, &["data"])
                .and_then(Yaml::as_mapping)
                .ok_or_else(|| anyhow!("ConfigMap {cm_name} has no data"))?;
            for (key, value) in data {
                let (Some(key), Some(value)) = (key.as_str(), value.as_str()) else {
                    bail!("ConfigMap {cm_name}: non-string data");
                };
                files.push((mount.to_owned(), key.to_owned(), value.to_owned()));
            }
        } else if volume.get("emptyDir").is_some() {
            empty_dirs.push(mount.to_owned());
        } else {
            bail!("{name}: volume {vname} is neither a ConfigMap nor an emptyDir");
        }
    }
    let api_access =
        at(pod, &["automountServiceAccountToken"]).and_then(Yaml::as_bool) != Some(false);
    Ok(Launch {
        role,
        pod_name: pod_name.to_owned(),
        bin: bin.to_owned(),
        args,
        env,
        probes,
        ports,
        api_access,
        files,
        empty_dirs,
    })
}

/// The NATS URL the manifests give the roles (from their config files).
fn rendered_nats_url(launches: &[Launch]) -> Result<String> {
    for l in launches {
        for (_, _, data) in &l.files {
            if let Ok(Yaml::Mapping(map)) = serde_yaml::from_str::<Yaml>(data)
                && let Some(url) = map.get("nats_url").and_then(Yaml::as_str)
            {
                return Ok(url.to_owned());
            }
        }
    }
    bail!("no config file names a nats_url")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_start_ready_roles() -> Result<()> {
    let docs = render("{}")?;
    let bins = cluster_bins()?;
    let edge_name = format!("{RELEASE}-fanout-edge");
    let router_name = format!("{RELEASE}-fanout-router");
    let worker_name = format!("{RELEASE}-fanout-worker");
    let router_pod = format!("{router_name}-0");
    let mut launches = vec![
        launch(
            &docs,
            "StatefulSet",
            &router_name,
            "router",
            &router_pod,
            &bins.router,
        )?,
        launch(
            &docs,
            "Deployment",
            &edge_name,
            "edge",
            &format!("{edge_name}-5d8c7b9f4-x7k2p"),
            &bins.edge,
        )?,
        launch(
            &docs,
            "Deployment",
            &worker_name,
            "worker",
            &format!("{worker_name}-6b7f9c5d8-q4m9z"),
            &bins.worker,
        )?,
    ];

    let nats = Nats::start().await?;
    let tmp = TempDir::new("chart-args")?;
    let mut subst = Substitutions::default();
    subst.add(
        rendered_nats_url(&launches)?,
        nats.url(),
        "in-cluster NATS URL",
    );

    // Every container port gets an ephemeral loopback port.
    let mut local_port = BTreeMap::new();
    for l in &launches {
        for (pname, port) in &l.ports {
            let fresh = free_port()?;
            local_port.insert((l.role, *port), fresh);
            subst.add(
                format!("0.0.0.0:{port}"),
                format!("127.0.0.1:{fresh}"),
                &format!("{} port {pname}", l.role),
            );
        }
    }
    ensure!(
        local_port.len() == launches.iter().map(|l| l.ports.len()).sum::<usize>(),
        "two roles listen on the same container port; this test gives each pod's ports their own local port and cannot tell them apart"
    );

    // Mounted volumes: one temp directory per (role, mount path).
    for l in &mut launches {
        let role_dir = tmp.0.join(l.role);
        let mut mounts: Vec<String> = l.files.iter().map(|(m, _, _)| m.clone()).collect();
        mounts.extend(l.empty_dirs.iter().cloned());
        mounts.sort();
        mounts.dedup();
        let mut role_subst = Substitutions {
            pairs: subst.pairs.clone(),
        };
        for (i, mount) in mounts.iter().enumerate() {
            let dir = role_dir.join(format!("mount{i}"));
            std::fs::create_dir_all(&dir)?;
            role_subst.add(
                mount.clone(),
                dir.display().to_string(),
                &format!("{} mount", l.role),
            );
        }
        for (mount, key, data) in &l.files {
            let path = PathBuf::from(role_subst.apply(mount)).join(key);
            std::fs::write(&path, role_subst.apply(data))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        l.args = l.args.iter().map(|a| role_subst.apply(a)).collect();
        l.env = l
            .env
            .iter()
            .map(|(k, v)| (k.clone(), role_subst.apply(v)))
            .collect();
    }

    // The router headless Service as rendered decides what the EndpointSlice holds.
    let router_sts = find(&docs, "StatefulSet", &router_name)?;
    let headless_name = str_at(router_sts, &["spec", "serviceName"])
        .ok_or_else(|| anyhow!("the router StatefulSet names no serviceName"))?;
    let headless = find(&docs, "Service", headless_name)?;
    let publish_not_ready = at(headless, &["spec", "publishNotReadyAddresses"])
        .and_then(Yaml::as_bool)
        .unwrap_or(false);
    let grpc_port = seq(headless, &["spec", "ports"])
        .iter()
        .find(|p| str_at(p, &["name"]) == Some("grpc"))
        .ok_or_else(|| anyhow!("the headless Service {headless_name} has no port named grpc"))?;
    let target = str_at(grpc_port, &["targetPort"]).unwrap_or("grpc");
    let router_target = launches[0]
        .ports
        .get(target)
        .copied()
        .ok_or_else(|| anyhow!("the router container has no port {target}"))?;
    let endpoint_port = local_port[&("router", router_target)];
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{headless_name}-h7x2k"),
            "namespace": NAMESPACE,
            "resourceVersion": "1",
            "labels": { "kubernetes.io/service-name": headless_name },
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": ["127.0.0.1"],
            // A router pod that is not ready yet: it must still be a member, since it
            // only turns ready once it owns partitions.
            "conditions": { "ready": publish_not_ready, "serving": false, "terminating": false },
            "targetRef": { "kind": "Pod", "name": router_pod, "namespace": NAMESPACE },
        }],
        "ports": [{ "name": "grpc", "port": endpoint_port, "protocol": "TCP" }],
    });
    let api = FakeKubeApi::start(vec![(NAMESPACE.to_owned(), slice)]).await?;
    let kubeconfig = api.write_kubeconfig(&tmp.0, NAMESPACE)?;

    let mut procs = Vec::new();
    for l in &launches {
        let mut cmd = Command::new(&l.bin);
        // Exactly the manifest's environment; only the dynamic loader's search path is
        // kept (the worker's libpython on this machine).
        cmd.env_clear().args(&l.args).envs(l.env.iter().cloned());
        if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
            cmd.env("LD_LIBRARY_PATH", path);
        }
        if l.api_access {
            println!(
                "substituted (in-cluster service account) for {}: KUBECONFIG={}",
                l.role,
                kubeconfig.display()
            );
            cmd.env("KUBECONFIG", &kubeconfig);
        }
        println!(
            "{} ({}): {} {}",
            l.role,
            l.pod_name,
            l.bin.display(),
            l.args.join(" ")
        );
        procs.push(Proc::spawn_command(l.role, cmd)?);
    }

    // Every probe the manifests name answers 200 once the role is up.
    let deadline = Instant::now() + START_TIMEOUT;
    for (l, proc) in launches.iter().zip(procs.iter_mut()) {
        for (kind, path, port) in &l.probes {
            let base = format!("http://127.0.0.1:{}", local_port[&(l.role, *port)]);
            loop {
                proc.ensure_running()?;
                let last = match http_get(&base, path).await {
                    Ok((200, _)) => break,
                    Ok((status, body)) => format!("{status} {}", body.trim()),
                    Err(e) => format!("{e:#}"),
                };
                if Instant::now() >= deadline {
                    bail!(
                        "{} {kind} probe {base}{path} not 200 within {START_TIMEOUT:?} (last: {last}); fake API requests: {:?}; output:\n{}",
                        l.role,
                        api.requests(),
                        proc.output()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            println!("{} {kind} probe {path}: 200", l.role);
        }
    }

    // Edges and routers watched the router headless Service's EndpointSlices.
    let selector = format!("labelSelector=kubernetes.io%2Fservice-name%3D{headless_name}");
    let path = format!("/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices?");
    let requests = api.requests();
    let watched = requests
        .iter()
        .filter(|r| r.starts_with(&path) && r.contains(&selector))
        .count();
    ensure!(
        watched >= 2,
        "expected the edge and the router to list the EndpointSlices of {headless_name}; requests: {requests:?}"
    );

    // The `helm test` pod's script, run against these processes: it subscribes through
    // the edge Service and publishes through the router Service until the event arrives.
    let mut service_subst = Substitutions::default();
    for svc in docs
        .iter()
        .filter(|d| str_at(d, &["kind"]) == Some("Service"))
    {
        let Some(svc_name) = str_at(svc, &["metadata", "name"]) else {
            continue;
        };
        let component = str_at(svc, &["spec", "selector", "app.kubernetes.io/component"]);
        let Some(l) = launches.iter().find(|l| Some(l.role) == component) else {
            continue;
        };
        for port in seq(svc, &["spec", "ports"]) {
            let (Some(number), Some(target)) = (
                at(port, &["port"]).and_then(Yaml::as_u64),
                str_at(port, &["targetPort"]),
            ) else {
                continue;
            };
            if let Some(container_port) = l.ports.get(target) {
                service_subst.add(
                    format!("{svc_name}:{number}"),
                    format!("127.0.0.1:{}", local_port[&(l.role, *container_port)]),
                    "Service DNS name",
                );
            }
        }
    }
    let test_pod = docs
        .iter()
        .find(|d| {
            str_at(d, &["kind"]) == Some("Pod")
                && str_at(d, &["metadata", "annotations", "helm.sh/hook"]) == Some("test")
        })
        .ok_or_else(|| anyhow!("the chart rendered no helm test Pod"))?;
    let c = seq(test_pod, &["spec", "containers"])
        .first()
        .ok_or_else(|| anyhow!("the helm test Pod has no container"))?;
    let command: Vec<&str> = seq(c, &["command"])
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    ensure!(
        command == ["/bin/sh", "-c"],
        "the helm test Pod runs {command:?}, not a /bin/sh script"
    );
    let script = seq(c, &["args"])
        .first()
        .and_then(Yaml::as_str)
        .ok_or_else(|| anyhow!("the helm test Pod has no script"))?;
    let fanout = fanout_tests::binary::fanout_bin()?;
    let bin_dir = fanout
        .parent()
        .ok_or_else(|| anyhow!("fanout binary has no directory"))?;
    let work = tmp.0.join("helm-test");
    std::fs::create_dir_all(&work)?;
    let mut cmd = Command::new("/bin/sh");
    // The image's PATH holds `fanout`; the shell tools come from this machine.
    cmd.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .arg("-c")
        .arg(script.replace("/tmp/", &format!("{}/", work.display())));
    if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
        cmd.env("LD_LIBRARY_PATH", path);
    }
    for e in seq(c, &["env"]) {
        let (Some(key), Some(value)) = (str_at(e, &["name"]), str_at(e, &["value"])) else {
            bail!("helm test env {e:?} is not a plain value (the default values use none)");
        };
        cmd.env(key, service_subst.apply(value));
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .context("helm test script task")?
        .context("cannot run /bin/sh for the helm test script")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains("helm-test"),
        "the helm test script failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    println!("helm test script: {}", stdout.trim());
    Ok(())
}
