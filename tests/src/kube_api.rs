//! A fake Kubernetes API server: just the EndpointSlice list and watch that the
//! `kubernetes` membership of edges and routers uses (kube's watcher), plus a
//! kubeconfig pointing at it, so real role processes can run with
//! `--membership kubernetes` outside a cluster (`kube::Client::try_default()` reads
//! `KUBECONFIG` before looking for an in-cluster service account).
//!
//! - list: `GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=..`
//!   returns an `EndpointSliceList` of the slices whose labels match the selector;
//! - watch: the same path with `watch=true` sends one BOOKMARK event and then stays
//!   open without changes, as an API server does for a quiet resource.
//!
//! Every request's path and query are recorded, so a test can check what the roles
//! asked for.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Resource version of the fake's (unchanging) state.
const RESOURCE_VERSION: &str = "1";

#[derive(Clone, Default)]
struct Shared {
    /// EndpointSlices as the API serves them, with their namespace.
    slices: Arc<Vec<(String, Value)>>,
    /// `PATH?QUERY` of every request, in order.
    requests: Arc<Mutex<Vec<String>>>,
}

/// A running fake API server on a loopback port; stopped on drop.
pub struct FakeKubeApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeKubeApi {
    /// Serves `slices` (namespace, EndpointSlice JSON) on a free loopback port.
    pub async fn start(slices: Vec<(String, Value)>) -> Result<FakeKubeApi> {
        let shared = Shared {
            slices: Arc::new(slices),
            requests: Arc::default(),
        };
        let app = Router::new()
            .route(
                "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                axum::routing::get(endpointslices),
            )
            .fallback(not_found)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the fake Kubernetes API")?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeKubeApi { url, shared, task })
    }

    /// Writes a kubeconfig for this server (no credentials, default namespace
    /// `namespace`) into `dir` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path, namespace: &str) -> Result<PathBuf> {
        let path = dir.join("kubeconfig");
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "fake", "cluster": { "server": self.url } }],
            "users": [{ "name": "fake", "user": {} }],
            "contexts": [{
                "name": "fake",
                "context": { "cluster": "fake", "user": "fake", "namespace": namespace },
            }],
            "current-context": "fake",
        });
        // JSON is YAML, which is what kube reads.
        std::fs::write(&path, config.to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// `PATH?QUERY` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

impl Drop for FakeKubeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(shared: &Shared, uri: &Uri) {
    if let Ok(mut requests) = shared.requests.lock() {
        requests.push(uri.to_string());
    }
}

async fn not_found(State(shared): State<Shared>, uri: Uri) -> Response {
    record(&shared, &uri);
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the fake API serves only EndpointSlices",
    )
}

/// A Kubernetes `Status` error response.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Whether `labels` match an equality-based selector `k=v,k2=v2` (all that kube's
/// watcher sends here).
fn matches(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .filter(|term| !term.is_empty())
        .all(|term| match term.split_once('=') {
            Some((key, value)) => labels.get(key).and_then(Value::as_str) == Some(value),
            None => labels.get(term).is_some(),
        })
}

async fn endpointslices(
    State(shared): State<Shared>,
    UrlPath(namespace): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
) -> Response {
    record(&shared, &uri);
    let selector = query.get("labelSelector").map(String::as_str).unwrap_or("");
    if query.get("watch").map(String::as_str) == Some("true") {
        let bookmark = json!({
            "type": "BOOKMARK",
            "object": {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": { "resourceVersion": RESOURCE_VERSION },
            },
        });
        let first =
            futures_util::stream::once(async move { Ok::<_, Infallible>(format!("{bookmark}\n")) });
        // Nothing ever changes: the watch stays open until the client goes away.
        let body = futures_util::StreamExt::chain(first, futures_util::stream::pending());
        return (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(body),
        )
            .into_response();
    }
    let items: Vec<Value> = shared
        .slices
        .iter()
        .filter(|(ns, slice)| *ns == namespace && matches(selector, &slice["metadata"]["labels"]))
        .map(|(_, slice)| slice.clone())
        .collect();
    let list = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSliceList",
        "metadata": { "resourceVersion": RESOURCE_VERSION },
        "items": items,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        list.to_string(),
    )
        .into_response()
}
