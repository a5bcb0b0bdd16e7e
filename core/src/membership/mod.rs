//! Which routers are members of the cluster, and which of them owns each partition.
//!
//! A [`MemberSet`] is the sorted set of ready routers with their gRPC addresses. A
//! [`Members`] handle publishes the current set through a [`watch::Receiver`] and is fed
//! by one source:
//! - static: a fixed list `id=host:port` ([`parse_static`], [`Members::fixed`]);
//! - [`kubernetes`]: the ready endpoints of the router headless Service, from its
//!   EndpointSlices.
//!
//! [`rendezvous`] maps partitions to members; every router and edge that sees the same
//! member set computes the same map.

pub mod kubernetes;
pub mod rendezvous;
mod r#static;

pub use kubernetes::KubernetesConfig;
pub use rendezvous::{Move, PartitionMap, owner};
pub use r#static::parse_static;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One router: its stable id (the pod name in Kubernetes) and gRPC address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// Stable id; what rendezvous hashing keys on.
    pub id: String,
    /// `host:port` of its gRPC server (`[v6]:port` for IPv6).
    pub addr: String,
}

impl Member {
    /// A member with `id` reachable at `addr`.
    pub fn new(id: impl Into<String>, addr: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            addr: addr.into(),
        }
    }
}

/// The ready members, sorted by id, one entry per id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSet {
    members: Vec<Member>,
}

impl MemberSet {
    /// The set of `members`. When an id appears twice, the entry with the smallest
    /// address is kept, so every process keeps the same one.
    pub fn new(members: impl IntoIterator<Item = Member>) -> Self {
        let mut members: Vec<Member> = members.into_iter().collect();
        members.sort();
        members.dedup_by(|later, earlier| later.id == earlier.id);
        Self { members }
    }

    /// Members in id order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Iterates members in id order.
    pub fn iter(&self) -> std::slice::Iter<'_, Member> {
        self.members.iter()
    }

    /// The member with `id`.
    pub fn get(&self, id: &str) -> Option<&Member> {
        self.members
            .binary_search_by(|m| m.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.members[i])
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member ids in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.id.as_str())
    }
}

impl<'a> IntoIterator for &'a MemberSet {
    type Item = &'a Member;
    type IntoIter = std::slice::Iter<'a, Member>;

    fn into_iter(self) -> Self::IntoIter {
        self.members.iter()
    }
}

/// The live member set of one source.
///
/// Dropping it stops the source's background task (if any); [`Members::stopped`] waits for
/// that task after its shutdown token was cancelled.
#[derive(Debug)]
pub struct Members {
    current: watch::Receiver<MemberSet>,
    synced: watch::Receiver<bool>,
    task: Option<JoinHandle<()>>,
}

impl Members {
    /// A fixed member set that never changes (static membership).
    pub fn fixed(set: MemberSet) -> Self {
        let (_tx, current) = watch::channel(set);
        let (_tx, synced) = watch::channel(true);
        Self {
            current,
            synced,
            task: None,
        }
    }

    /// A member set fed by `task` through the senders paired with the two receivers.
    pub(crate) fn from_task(
        current: watch::Receiver<MemberSet>,
        synced: watch::Receiver<bool>,
        task: JoinHandle<()>,
    ) -> Self {
        Self {
            current,
            synced,
            task: Some(task),
        }
    }

    /// The member set now.
    pub fn current(&self) -> MemberSet {
        self.current.borrow().clone()
    }

    /// A receiver that sees every change of the set (`changed().await`).
    pub fn subscribe(&self) -> watch::Receiver<MemberSet> {
        self.current.clone()
    }

    /// Whether the source has delivered its first complete view (always true for a
    /// fixed set). Before that the set is empty and means "not known yet".
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until [`Self::is_synced`]; returns at once if the source stopped before.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        // An error means the source stopped; nothing more to wait for.
        let _ = synced.wait_for(|s| *s).await;
    }

    /// Waits for the background task to end (after its shutdown token was cancelled).
    pub async fn stopped(mut self) {
        if let Some(task) = self.task.take() {
            // A panicked or aborted task has stopped too.
            let _ = task.await;
        }
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_set_is_sorted_and_deduplicated() {
        let set = MemberSet::new([
            Member::new("r-2", "10.0.0.2:50051"),
            Member::new("r-1", "10.0.0.9:50051"),
            Member::new("r-1", "10.0.0.1:50051"),
        ]);
        assert_eq!(set.ids().collect::<Vec<_>>(), ["r-1", "r-2"]);
        assert_eq!(
            set.get("r-1").map(|m| m.addr.as_str()),
            Some("10.0.0.1:50051")
        );
        assert!(!set.contains("r-3"));
    }

    #[tokio::test]
    async fn fixed_members_are_synced() {
        let members = Members::fixed(MemberSet::new([Member::new("a", "h:1")]));
        assert!(members.is_synced());
        members.wait_synced().await;
        assert_eq!(members.current().len(), 1);
    }
}
