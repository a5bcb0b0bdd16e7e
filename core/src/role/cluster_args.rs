//! Flags shared by the cluster roles: the NATS URL, the partition count and how to
//! find the routers.

use std::sync::Arc;

use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::bus::NatsBus;
use crate::membership::{Members, kubernetes, parse_static};

/// Where the member set of routers comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MembershipKind {
    /// A fixed list (`--members`), filtered by router heartbeats on the bus.
    Static,
    /// The ready endpoints of the router headless Service (EndpointSlices).
    Kubernetes,
}

/// Cluster flags of `fanout-edge`, `fanout-router` and `fanout-worker`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// NATS server URL (several, comma-separated, for a NATS cluster).
    #[arg(long, env = "FANOUT_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Number of partitions; fixed for the cluster's life and equal in every role.
    #[arg(long, env = "FANOUT_PARTITIONS", default_value_t = crate::partition::DEFAULT_PARTITIONS)]
    pub partitions: u32,
    /// How routers are found.
    #[arg(long, env = "FANOUT_MEMBERSHIP", value_enum, default_value = "static")]
    pub membership: MembershipKind,
    /// Static routers as ID=HOST:PORT (gRPC address); repeat the flag or separate by commas.
    #[arg(long, env = "FANOUT_MEMBERS", value_delimiter = ',')]
    pub members: Vec<String>,
    /// Namespace of the router Service [default: the pod's own namespace].
    #[arg(long, env = "FANOUT_K8S_NAMESPACE")]
    pub k8s_namespace: Option<String>,
    /// Name of the router headless Service.
    #[arg(long, env = "FANOUT_K8S_SERVICE", default_value = "fanout-router")]
    pub k8s_service: String,
}

impl ClusterArgs {
    /// Checks that router `id` is one of the static members (a router outside the list
    /// would never own anything).
    pub fn check_router_id(&self, id: &str) -> Option<String> {
        if self.membership != MembershipKind::Static {
            return None;
        }
        let members = parse_static(&self.members).ok()?;
        (!members.contains(id)).then(|| {
            format!(
                "--router-id {id} is not one of --members ({})",
                members.ids().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Checks the flags; returns every problem.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.partitions == 0 {
            out.push("--partitions must be at least 1".into());
        }
        match self.membership {
            MembershipKind::Static => {
                if self.members.is_empty() {
                    out.push("--members is required with --membership static".into());
                } else if let Err(e) = parse_static(&self.members) {
                    out.push(format!("--members: {e}"));
                }
            }
            MembershipKind::Kubernetes => {
                if self.k8s_namespace.is_none() && pod_namespace().is_none() {
                    out.push("--k8s-namespace is required outside a pod".into());
                }
            }
        }
        out
    }

    /// Connects to NATS as `name` (reconnecting forever in the background).
    pub async fn connect_bus(&self, name: &str) -> crate::Result<Arc<NatsBus>> {
        Ok(Arc::new(NatsBus::connect(&self.nats_url, name).await?))
    }

    /// The configured router members (not yet filtered by liveness).
    pub async fn members(&self, shutdown: CancellationToken) -> crate::Result<Members> {
        match self.membership {
            MembershipKind::Static => Ok(Members::fixed(parse_static(&self.members)?)),
            MembershipKind::Kubernetes => {
                let namespace = self
                    .k8s_namespace
                    .clone()
                    .or_else(pod_namespace)
                    .unwrap_or_else(|| "default".into());
                let client = kubernetes::default_client().await?;
                Ok(kubernetes::watch(
                    client,
                    kubernetes::KubernetesConfig::new(namespace, self.k8s_service.clone()),
                    shutdown,
                ))
            }
        }
    }
}

fn pod_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
