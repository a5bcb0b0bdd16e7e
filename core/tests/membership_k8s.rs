//! Kubernetes membership against an in-test HTTP server that speaks the part of the
//! Kubernetes API that kube's watcher uses for EndpointSlices:
//!
//! - list: `GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=..&limit=500`
//!   returns an `EndpointSliceList` with the current `resourceVersion`;
//! - watch: the same path with `watch=true&timeoutSeconds=290&allowWatchBookmarks=true&
//!   resourceVersion=RV` streams one JSON watch event per line (a BOOKMARK first, then every
//!   change after RV) and stays open until the test closes it, as an API server does when
//!   `timeoutSeconds` runs out.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fanout_core::membership::{KubernetesConfig, MemberSet, kubernetes};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const NAMESPACE: &str = "fanout";
const SERVICE: &str = "fanout-router";

async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s waiting for {what}"),
    }
}

/// What the fake API server holds.
#[derive(Default)]
struct Cluster {
    /// Last resourceVersion handed out.
    rv: u64,
    /// Current slices by name (JSON as the API serves them).
    slices: BTreeMap<String, Value>,
    /// Every change as `(resourceVersion, watch event line)`.
    log: Vec<(u64, String)>,
    /// Query parameters of every request, in order.
    requests: Vec<HashMap<String, String>>,
    /// Bumped to end every open watch.
    watch_generation: u64,
}

#[derive(Clone)]
struct FakeApi {
    cluster: Arc<Mutex<Cluster>>,
    /// Bumped on every change, to wake open watches.
    changed: watch::Sender<u64>,
}

impl FakeApi {
    fn new() -> Self {
        Self {
            cluster: Arc::default(),
            changed: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.cluster.lock().expect("cluster lock")
    }

    fn record(&self, kind: &str, mut slice: EndpointSlice) {
        let rv = {
            let mut c = self.lock();
            c.rv += 1;
            let rv = c.rv;
            slice.metadata.resource_version = Some(rv.to_string());
            let name = slice.metadata.name.clone().expect("slice name");
            let object = serde_json::to_value(&slice).expect("slice JSON");
            if kind == "DELETED" {
                c.slices.remove(&name);
            } else {
                c.slices.insert(name, object.clone());
            }
            let line = json!({ "type": kind, "object": object }).to_string();
            c.log.push((rv, line));
            rv
        };
        self.changed.send_replace(rv);
    }

    fn apply(&self, slice: EndpointSlice) {
        let exists = self
            .lock()
            .slices
            .contains_key(slice.metadata.name.as_deref().unwrap_or(""));
        self.record(if exists { "MODIFIED" } else { "ADDED" }, slice);
    }

    fn delete(&self, slice: EndpointSlice) {
        self.record("DELETED", slice);
    }

    /// Ends every open watch, as the API server does when `timeoutSeconds` runs out.
    /// A watch sends nothing recorded after this call.
    fn close_watches(&self) {
        self.lock().watch_generation += 1;
        self.changed.send_modify(|_| {});
    }

    fn requests(&self) -> Vec<HashMap<String, String>> {
        self.lock().requests.clone()
    }

    fn current_rv(&self) -> u64 {
        self.lock().rv
    }
}

async fn endpointslices(
    State(api): State<FakeApi>,
    Path(namespace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    api.lock().requests.push(query.clone());
    let selector = format!("kubernetes.io/service-name={SERVICE}");
    if namespace != NAMESPACE || query.get("labelSelector") != Some(&selector) {
        return (
            StatusCode::BAD_REQUEST,
            "unexpected namespace or labelSelector",
        )
            .into_response();
    }
    if query.get("watch").map(String::as_str) != Some("true") {
        let c = api.lock();
        let list = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSliceList",
            "metadata": { "resourceVersion": c.rv.to_string() },
            "items": c.slices.values().cloned().collect::<Vec<_>>(),
        });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            list.to_string(),
        )
            .into_response();
    }
    let Some(from) = query
        .get("resourceVersion")
        .and_then(|rv| rv.parse::<u64>().ok())
    else {
        return (StatusCode::BAD_REQUEST, "watch without a resourceVersion").into_response();
    };
    // A bookmark first, as an API server sends them when asked with allowWatchBookmarks.
    let bookmark = json!({
        "type": "BOOKMARK",
        "object": {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": { "resourceVersion": from.to_string() },
        },
    })
    .to_string();
    struct Watch {
        api: FakeApi,
        generation: u64,
        sent_up_to: u64,
        pending: Vec<String>,
        changed: watch::Receiver<u64>,
    }
    let generation = api.lock().watch_generation;
    let state = Watch {
        changed: api.changed.subscribe(),
        api,
        generation,
        sent_up_to: from,
        pending: vec![bookmark],
    };
    let stream = futures_util::stream::unfold(state, |mut w| async move {
        loop {
            if let Some(line) = w.pending.pop() {
                return Some((Ok::<_, Infallible>(format!("{line}\n")), w));
            }
            let fresh: Vec<(u64, String)> = {
                // Generation and log read under one lock: nothing recorded after a
                // close goes out on a closed watch.
                let c = w.api.lock();
                if c.watch_generation != w.generation {
                    return None;
                }
                c.log
                    .iter()
                    .filter(|(rv, _)| *rv > w.sent_up_to)
                    .cloned()
                    .collect()
            };
            if let Some((rv, _)) = fresh.last() {
                w.sent_up_to = *rv;
                // `pending` is popped from the back.
                w.pending = fresh.into_iter().rev().map(|(_, line)| line).collect();
                continue;
            }
            if w.changed.changed().await.is_err() {
                return None;
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn endpoint(pod: &str, ip: &str, ready: Option<bool>) -> Endpoint {
    Endpoint {
        addresses: vec![ip.to_owned()],
        conditions: ready.map(|ready| EndpointConditions {
            ready: Some(ready),
            serving: Some(ready),
            terminating: Some(false),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_owned()),
            name: Some(pod.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slice(name: &str, endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_owned(),
                SERVICE.to_owned(),
            )])),
            ..Default::default()
        },
        address_type: "IPv4".to_owned(),
        endpoints: Some(endpoints),
        ports: Some(vec![
            EndpointPort {
                name: Some("metrics".to_owned()),
                port: Some(9090),
                ..Default::default()
            },
            EndpointPort {
                name: Some("grpc".to_owned()),
                port: Some(50051),
                ..Default::default()
            },
        ]),
    }
}

fn pairs(set: &MemberSet) -> Vec<(String, String)> {
    set.iter().map(|m| (m.id.clone(), m.addr.clone())).collect()
}

async fn wait_for_members(
    rx: &mut watch::Receiver<MemberSet>,
    expected: &[(&str, &str)],
    what: &str,
) {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(id, addr)| ((*id).to_owned(), (*addr).to_owned()))
        .collect();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|set| pairs(set) == expected),
    )
    .await
    .map(|r| r.map(|_| ()));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("membership task stopped while waiting for {what}"),
        Err(_) => panic!(
            "timed out waiting for {what}: want {expected:?}, have {:?}",
            pairs(&rx.borrow())
        ),
    }
}

#[tokio::test]
async fn member_set_follows_endpoint_slices() {
    let api = FakeApi::new();
    let slice_a = |r1_ready| {
        slice(
            "fanout-router-abcde",
            vec![
                endpoint("fanout-router-0", "10.1.0.10", Some(true)),
                endpoint("fanout-router-1", "10.1.0.11", Some(r1_ready)),
            ],
        )
    };
    api.apply(slice_a(true));
    let listed_rv = api.current_rv();

    let listener = within(5, "bind", tokio::net::TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = Router::new()
        .route(
            "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            axum::routing::get(endpointslices),
        )
        .with_state(api.clone());
    let server_stop = CancellationToken::new();
    let stop = server_stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    });

    let url = format!("http://127.0.0.1:{port}")
        .parse()
        .expect("cluster url");
    let client = kube::Client::try_from(kube::Config::new(url)).expect("kube client");
    let shutdown = CancellationToken::new();
    let members = kubernetes::watch(
        client,
        KubernetesConfig::new(NAMESPACE, SERVICE),
        shutdown.clone(),
    );
    assert!(!members.is_synced());
    let mut rx = members.subscribe();

    within(10, "the initial list", members.wait_synced()).await;
    wait_for_members(
        &mut rx,
        &[
            ("fanout-router-0", "10.1.0.10:50051"),
            ("fanout-router-1", "10.1.0.11:50051"),
        ],
        "both ready routers",
    )
    .await;

    // A router fails its readiness probe.
    api.apply(slice_a(false));
    wait_for_members(
        &mut rx,
        &[("fanout-router-0", "10.1.0.10:50051")],
        "router 1 to leave when not ready",
    )
    .await;

    // A new slice with an endpoint without conditions (absent means ready).
    let slice_b = slice(
        "fanout-router-fghij",
        vec![endpoint("fanout-router-2", "10.1.0.12", None)],
    );
    api.apply(slice_b.clone());
    wait_for_members(
        &mut rx,
        &[
            ("fanout-router-0", "10.1.0.10:50051"),
            ("fanout-router-2", "10.1.0.12:50051"),
        ],
        "router 2 to join from a new slice",
    )
    .await;
    let rv_before_close = api.current_rv();

    // The API server ends the watch (timeoutSeconds); a change made meanwhile must
    // still arrive through the next watch, which resumes from the last resourceVersion.
    api.close_watches();
    api.apply(slice_a(true));
    wait_for_members(
        &mut rx,
        &[
            ("fanout-router-0", "10.1.0.10:50051"),
            ("fanout-router-1", "10.1.0.11:50051"),
            ("fanout-router-2", "10.1.0.12:50051"),
        ],
        "router 1 to come back after the watch was re-opened",
    )
    .await;

    // The whole slice disappears.
    api.delete(slice_b);
    wait_for_members(
        &mut rx,
        &[
            ("fanout-router-0", "10.1.0.10:50051"),
            ("fanout-router-1", "10.1.0.11:50051"),
        ],
        "router 2 to leave with its slice",
    )
    .await;

    // What the watcher asked: one list, then watches from the list's resourceVersion and,
    // after the close, from the last one it saw.
    let requests = api.requests();
    let list = requests.first().expect("a list request");
    assert_eq!(list.get("watch"), None, "first request is a list: {list:?}");
    let watches: Vec<_> = requests
        .iter()
        .filter(|q| q.get("watch").map(String::as_str) == Some("true"))
        .collect();
    assert!(
        watches.len() >= 2,
        "a watch before and after the close: {requests:?}"
    );
    assert_eq!(
        watches[0].get("resourceVersion"),
        Some(&listed_rv.to_string())
    );
    assert_eq!(
        watches[0].get("allowWatchBookmarks").map(String::as_str),
        Some("true")
    );
    assert!(watches[0].contains_key("timeoutSeconds"));
    assert_eq!(
        watches[1].get("resourceVersion"),
        Some(&rv_before_close.to_string()),
        "the second watch resumes where the first ended"
    );
    assert_eq!(
        requests.iter().filter(|q| q.get("watch").is_none()).count(),
        1,
        "no re-list was needed: {requests:?}"
    );

    shutdown.cancel();
    within(5, "the membership task to stop", members.stopped()).await;
    server_stop.cancel();
    api.close_watches();
    within(5, "the fake API server to stop", server)
        .await
        .expect("server task")
        .expect("server");
}
