//! Kubernetes membership: the ready endpoints of the router headless Service.
//!
//! Watches the `discovery.k8s.io/v1` EndpointSlices labelled
//! `kubernetes.io/service-name=<service>` in one namespace with `kube`'s watcher (list,
//! then watch from the list's resourceVersion, re-listing when the watch expires) and
//! publishes the member set after the initial list and after every change.
//!
//! An endpoint is a member when it is ready and not terminating (absent conditions
//! count as ready, as the API documents). `serving` is not consulted: the router
//! headless Service publishes not-ready addresses, so its endpoints are `ready` while
//! `serving` mirrors the pod's readiness, and a router only turns ready once it sees
//! itself as a member (owning partitions) — requiring `serving` would keep every
//! router out forever. Members are filtered by their bus heartbeats anyway, and the
//! `terminating` check keeps pods that are shutting down out. Its
//! id is the name of the Pod it targets (`targetRef.name`), else its `hostname`; its
//! address is the first of its addresses with the slice's port named
//! [`KubernetesConfig::port_name`], else [`KubernetesConfig::port`].

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use futures_util::StreamExt;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Member, MemberSet, Members};
use crate::{Error, Result};

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Where to find the routers in Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// Namespace of the router Service.
    pub namespace: String,
    /// Name of the router headless Service.
    pub service: String,
    /// Name of the Service port that serves gRPC. Default `grpc`.
    pub port_name: String,
    /// Port used when a slice has no port named [`Self::port_name`]. Default none: such
    /// slices contribute no members.
    pub port: Option<u16>,
}

impl KubernetesConfig {
    /// Routers of Service `service` in `namespace`, gRPC on the port named `grpc`.
    pub fn new(namespace: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            service: service.into(),
            port_name: "grpc".to_owned(),
            port: None,
        }
    }

    /// The label selector of the Service's EndpointSlices.
    pub fn label_selector(&self) -> String {
        format!("{SERVICE_NAME_LABEL}={}", self.service)
    }
}

/// A client from the in-cluster service account, or else the local kubeconfig.
pub async fn default_client() -> Result<kube::Client> {
    kube::Client::try_default().await.map_err(Error::Kubernetes)
}

/// Starts watching the router EndpointSlices with `client`; the returned [`Members`]
/// follows them until `shutdown` is cancelled or it is dropped.
///
/// The set is empty and [`Members::is_synced`] false until the first list has been
/// read. API errors are logged and retried with backoff; the last known set stays
/// published meanwhile.
pub fn watch(
    client: kube::Client,
    config: KubernetesConfig,
    shutdown: CancellationToken,
) -> Members {
    let (set_tx, set_rx) = watch::channel(MemberSet::default());
    let (synced_tx, synced_rx) = watch::channel(false);
    let task = tokio::spawn(run(client, config, shutdown, set_tx, synced_tx));
    Members::from_task(set_rx, synced_rx, task)
}

async fn run(
    client: kube::Client,
    config: KubernetesConfig,
    shutdown: CancellationToken,
    set_tx: watch::Sender<MemberSet>,
    synced_tx: watch::Sender<bool>,
) {
    let api: Api<EndpointSlice> = Api::namespaced(client, &config.namespace);
    let watcher_config = watcher::Config::default().labels(&config.label_selector());
    let mut events = std::pin::pin!(watcher::watcher(api, watcher_config).default_backoff());
    // Slices by name; `relisting` collects a fresh list before it replaces `slices`.
    let mut slices: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut relisting: Option<BTreeMap<String, EndpointSlice>> = None;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.next() => event,
        };
        let changed = match event {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(
                    namespace = %config.namespace,
                    service = %config.service,
                    error = %e,
                    "watching router EndpointSlices failed; retrying"
                );
                false
            }
            Some(Ok(Event::Init)) => {
                relisting = Some(BTreeMap::new());
                false
            }
            Some(Ok(Event::InitApply(slice))) => {
                relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(slice_key(&slice), slice);
                false
            }
            Some(Ok(Event::InitDone)) => {
                slices = relisting.take().unwrap_or_default();
                true
            }
            Some(Ok(Event::Apply(slice))) => {
                slices.insert(slice_key(&slice), slice);
                true
            }
            Some(Ok(Event::Delete(slice))) => {
                slices.remove(&slice_key(&slice));
                true
            }
        };
        if changed {
            let next = members_of(slices.values(), &config);
            set_tx.send_if_modified(|current| {
                if *current == next {
                    return false;
                }
                tracing::info!(
                    members = ?next.ids().collect::<Vec<_>>(),
                    "router membership changed"
                );
                *current = next;
                true
            });
            synced_tx.send_if_modified(|synced| !std::mem::replace(synced, true));
        }
    }
}

fn slice_key(slice: &EndpointSlice) -> String {
    slice.metadata.name.clone().unwrap_or_default()
}

/// The members that `slices` describe under `config`.
pub fn members_of<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    config: &KubernetesConfig,
) -> MemberSet {
    let mut members = Vec::new();
    for slice in slices {
        let named_port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(config.port_name.as_str()))
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = named_port.or(config.port) else {
            tracing::debug!(
                slice = slice.metadata.name.as_deref().unwrap_or(""),
                port_name = %config.port_name,
                "EndpointSlice has no gRPC port; skipped"
            );
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            if let Some(member) = member_of(endpoint, port) {
                members.push(member);
            }
        }
    }
    MemberSet::new(members)
}

fn member_of(endpoint: &Endpoint, port: u16) -> Option<Member> {
    let conditions = endpoint.conditions.as_ref();
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    if !ready || terminating {
        return None;
    }
    let id = endpoint
        .target_ref
        .as_ref()
        .and_then(|r| r.name.clone())
        .or_else(|| endpoint.hostname.clone())
        .filter(|id| !id.is_empty())?;
    let ip = endpoint.addresses.first()?;
    let addr = if ip.parse::<Ipv6Addr>().is_ok() {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    Some(Member::new(id, addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointPort};

    fn endpoint(pod: &str, ip: &str, ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![ip.to_owned()],
            conditions: Some(EndpointConditions {
                ready,
                ..Default::default()
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".to_owned()),
                name: Some(pod.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn slice(endpoints: Vec<Endpoint>, port: Option<(&str, i32)>) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".to_owned(),
            endpoints: Some(endpoints),
            ports: port.map(|(name, port)| {
                vec![EndpointPort {
                    name: Some(name.to_owned()),
                    port: Some(port),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_ready_endpoints_with_a_grpc_port_are_members() {
        let config = KubernetesConfig::new("ns", "routers");
        let mut terminating = endpoint("r-3", "10.0.0.3", Some(true));
        if let Some(c) = terminating.conditions.as_mut() {
            c.terminating = Some(true);
        }
        // Published although its pod is not ready yet (publishNotReadyAddresses).
        let mut starting = endpoint("r-6", "10.0.0.6", Some(true));
        if let Some(c) = starting.conditions.as_mut() {
            c.serving = Some(false);
        }
        let mut by_hostname = endpoint("", "fd00::5", None);
        by_hostname.target_ref = None;
        by_hostname.hostname = Some("r-5".to_owned());
        let slices = [
            slice(
                vec![
                    endpoint("r-1", "10.0.0.1", Some(true)),
                    endpoint("r-2", "10.0.0.2", Some(false)),
                    endpoint("r-4", "10.0.0.4", None),
                    terminating,
                    by_hostname,
                    starting,
                ],
                Some(("grpc", 50051)),
            ),
            slice(
                vec![endpoint("r-9", "10.0.0.9", Some(true))],
                Some(("http", 80)),
            ),
        ];
        let set = members_of(&slices, &config);
        assert_eq!(set.ids().collect::<Vec<_>>(), ["r-1", "r-4", "r-5", "r-6"]);
        assert_eq!(
            set.get("r-1").map(|m| m.addr.as_str()),
            Some("10.0.0.1:50051")
        );
        assert_eq!(
            set.get("r-5").map(|m| m.addr.as_str()),
            Some("[fd00::5]:50051")
        );

        let with_fallback = KubernetesConfig {
            port: Some(7000),
            ..config
        };
        let set = members_of(&slices, &with_fallback);
        assert_eq!(
            set.get("r-9").map(|m| m.addr.as_str()),
            Some("10.0.0.9:7000")
        );
    }
}
