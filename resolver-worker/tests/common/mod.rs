//! Shared helpers for the resolver-worker integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fanout_core::security::SecurityContext;
use fanout_resolver_worker::{
    EventInput, PythonConfig, PythonRuntime, ResolveCall, ResolveOutcome,
};
use serde_json::{Map, Value, json};

/// A scratch directory removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fanout-rw-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self { dir }
    }

    /// Writes `rel` (dedenting nothing: give the exact file text).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a runtime for `source` written to `resolvers.py` in a fresh scratch dir.
pub fn runtime(name: &str, source: &str, timeout: Duration) -> (Scratch, PythonRuntime) {
    let scratch = Scratch::new(name);
    let path = scratch.write("resolvers.py", source);
    let config = PythonConfig::new(path).with_timeout(timeout);
    let runtime = PythonRuntime::start(config).expect("runtime starts");
    (scratch, runtime)
}

pub fn event(payload: Value) -> Arc<EventInput> {
    Arc::new(EventInput {
        channel: "orders.42".into(),
        payload,
        tenant: Some("acme".into()),
        headers: [("trace".to_owned(), "abc".to_owned())]
            .into_iter()
            .collect(),
        offset: 7,
        epoch: 3,
    })
}

pub fn call(field: &str, args: Value) -> ResolveCall {
    ResolveCall {
        field: field.into(),
        args: match args {
            Value::Object(map) => map,
            _ => Map::new(),
        },
        security: SecurityContext::anonymous(),
    }
}

pub fn user(tenant: &str, roles: &[&str]) -> SecurityContext {
    let claims = json!({"sub": "u1", "tenant": tenant, "roles": roles, "scope": "orders:read", "plan": "gold"});
    match claims {
        Value::Object(map) => SecurityContext::from_claims(map),
        _ => SecurityContext::anonymous(),
    }
}

/// `resolve_batch` with a test-level guard so a hang fails instead of blocking CI.
pub async fn resolve(
    runtime: &PythonRuntime,
    event: Arc<EventInput>,
    calls: Vec<ResolveCall>,
) -> Vec<ResolveOutcome> {
    tokio::time::timeout(Duration::from_secs(30), runtime.resolve_batch(event, calls))
        .await
        .expect("resolve_batch returned within 30 s")
}

pub async fn resolve_one(runtime: &PythonRuntime, payload: Value, field: &str) -> ResolveOutcome {
    let mut outcomes = resolve(runtime, event(payload), vec![call(field, json!({}))]).await;
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
