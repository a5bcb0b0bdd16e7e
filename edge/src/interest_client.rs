//! Cluster interest: this edge's shapes streamed to the routers that own their
//! channels (DESIGN §3.5).
//!
//! [`ClusterInterest`] is the edge's [`InterestSink`] in cluster mode. It keeps every
//! shape the edge wants and one gRPC `Interest` stream per ready router. A shape goes
//! to the router that owns its channel's partition (rendezvous hashing over the
//! member set, identical in every process). When a stream (re)connects it gets a
//! snapshot; when the member set changes, shapes whose owner moved are re-sent to the
//! new owner and withdrawn from the old one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use fanout_core::interest::InterestSink;
use fanout_core::membership::{Member, MemberSet, rendezvous};
use fanout_core::partition::partition_of;
use fanout_core::shape::{Shape, ShapeId};
use fanout_proto::v1::interest_client::InterestClient;
use fanout_proto::v1::{InterestHello, InterestUpdate, ShapeRef, interest_notice, interest_update};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Updates queued per router stream.
const LINK_QUEUE: usize = 65_536;
/// Longest pause between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

enum Command {
    Add(Arc<Shape>),
    Remove(ShapeId, String),
}

enum LinkEvent {
    Up(String, u64, mpsc::Sender<InterestUpdate>),
    Down(String, u64),
}

/// The edge's interest in cluster mode.
pub struct ClusterInterest {
    wanted: Arc<DashMap<ShapeId, Arc<Shape>>>,
    commands: mpsc::UnboundedSender<Command>,
    links_up: Arc<AtomicUsize>,
    members: watch::Receiver<MemberSet>,
}

impl std::fmt::Debug for ClusterInterest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterInterest")
            .field("shapes", &self.wanted.len())
            .field("links_up", &self.links_up.load(Ordering::Relaxed))
            .finish()
    }
}

impl ClusterInterest {
    /// Starts streaming interest of edge `edge_id` to the routers of `members`.
    pub fn start(
        edge_id: String,
        partitions: u32,
        members: watch::Receiver<MemberSet>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let wanted = Arc::new(DashMap::new());
        let (commands, rx) = mpsc::unbounded_channel();
        let links_up = Arc::new(AtomicUsize::new(0));
        let manager = Manager {
            edge_id,
            partitions,
            wanted: wanted.clone(),
            members: members.clone(),
            links: HashMap::new(),
            links_up: links_up.clone(),
            next_generation: 0,
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        };
        tracker.spawn(manager.run(rx));
        Arc::new(Self {
            wanted,
            commands,
            links_up,
            members,
        })
    }

    /// Whether every current router has a live interest stream from this edge.
    pub fn all_links_up(&self) -> bool {
        let members = self.members.borrow().len();
        members > 0 && self.links_up.load(Ordering::Relaxed) >= members
    }
}

impl InterestSink for ClusterInterest {
    fn add(&self, _edge: &str, shape: Arc<Shape>) {
        self.wanted.insert(shape.id, shape.clone());
        let _ = self.commands.send(Command::Add(shape));
    }

    fn remove(&self, _edge: &str, channel: &str, shape: ShapeId) {
        self.wanted.remove(&shape);
        let _ = self
            .commands
            .send(Command::Remove(shape, channel.to_owned()));
    }

    fn drop_edge(&self, _edge: &str) {
        // Routers drop an edge's interest when its streams close.
    }
}

struct Link {
    generation: u64,
    tx: Option<mpsc::Sender<InterestUpdate>>,
    sent: HashSet<ShapeId>,
    stop: CancellationToken,
}

struct Manager {
    edge_id: String,
    partitions: u32,
    wanted: Arc<DashMap<ShapeId, Arc<Shape>>>,
    members: watch::Receiver<MemberSet>,
    links: HashMap<String, Link>,
    links_up: Arc<AtomicUsize>,
    next_generation: u64,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Manager {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let (events_tx, mut events) = mpsc::channel(64);
        self.follow_members(&events_tx).await;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                changed = self.members.changed() => {
                    if changed.is_err() { break; }
                    self.follow_members(&events_tx).await;
                }
                Some(command) = commands.recv() => self.command(command).await,
                Some(event) = events.recv() => self.link_event(event).await,
            }
        }
        for link in self.links.values() {
            link.stop.cancel();
        }
    }

    fn owner_of(&self, members: &MemberSet, channel: &str) -> Option<String> {
        rendezvous::owner(partition_of(channel, self.partitions), members).map(|m| m.id.clone())
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Add(shape) => {
                let members = self.members.borrow().clone();
                let Some(owner) = self.owner_of(&members, shape.channel()) else {
                    return;
                };
                if !self.wanted.contains_key(&shape.id) {
                    return; // removed again before we got here
                }
                if let Some(link) = self.links.get_mut(&owner) {
                    send_add(link, &shape).await;
                }
            }
            Command::Remove(id, channel) => {
                if self.wanted.contains_key(&id) {
                    return; // re-added since
                }
                for link in self.links.values_mut() {
                    if link.sent.remove(&id)
                        && let Some(tx) = &link.tx
                    {
                        let _ = tx.send(remove_update(id, &channel)).await;
                    }
                }
            }
        }
    }

    async fn follow_members(&mut self, events: &mpsc::Sender<LinkEvent>) {
        let members = self.members.borrow_and_update().clone();
        let gone: Vec<String> = self
            .links
            .keys()
            .filter(|id| !members.contains(id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(link) = self.links.remove(&id) {
                link.stop.cancel();
                if link.tx.is_some() {
                    self.links_up.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        for member in members.iter() {
            if !self.links.contains_key(&member.id) {
                self.next_generation += 1;
                let stop = self.shutdown.child_token();
                self.links.insert(
                    member.id.clone(),
                    Link {
                        generation: self.next_generation,
                        tx: None,
                        sent: HashSet::new(),
                        stop: stop.clone(),
                    },
                );
                self.tracker.spawn(run_link(
                    self.edge_id.clone(),
                    member.clone(),
                    self.next_generation,
                    events.clone(),
                    stop,
                ));
            }
        }
        let ids: Vec<String> = self.links.keys().cloned().collect();
        for id in ids {
            self.resync(&id, &members).await;
        }
    }

    async fn link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Up(id, generation, tx) => {
                let Some(link) = self.links.get_mut(&id) else {
                    return;
                };
                if link.generation != generation {
                    return;
                }
                if link.tx.is_none() {
                    self.links_up.fetch_add(1, Ordering::Relaxed);
                }
                link.tx = Some(tx);
                link.sent.clear();
                let members = self.members.borrow().clone();
                self.resync(&id, &members).await;
            }
            LinkEvent::Down(id, generation) => {
                let Some(link) = self.links.get_mut(&id) else {
                    return;
                };
                if link.generation == generation && link.tx.take().is_some() {
                    self.links_up.fetch_sub(1, Ordering::Relaxed);
                    link.sent.clear();
                }
            }
        }
    }

    /// Makes what router `id` was sent equal to the shapes it owns.
    async fn resync(&mut self, id: &str, members: &MemberSet) {
        let desired: Vec<Arc<Shape>> = self
            .wanted
            .iter()
            .filter(|e| self.owner_of(members, e.value().channel()).as_deref() == Some(id))
            .map(|e| e.value().clone())
            .collect();
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        let Some(tx) = link.tx.clone() else { return };
        let desired_ids: HashSet<ShapeId> = desired.iter().map(|s| s.id).collect();
        let stale: Vec<ShapeId> = link.sent.difference(&desired_ids).copied().collect();
        for shape_id in stale {
            link.sent.remove(&shape_id);
            // The channel is only used for routing on the router; an unknown shape is
            // ignored there, so an empty channel is enough when we no longer have it.
            let channel = self
                .wanted
                .get(&shape_id)
                .map(|s| s.channel().to_owned())
                .unwrap_or_default();
            let _ = tx.send(remove_update(shape_id, &channel)).await;
        }
        for shape in desired {
            send_add(link, &shape).await;
        }
    }
}

async fn send_add(link: &mut Link, shape: &Shape) {
    let Some(tx) = &link.tx else { return };
    if link.sent.insert(shape.id) {
        let update = InterestUpdate {
            kind: Some(interest_update::Kind::Add(shape.spec())),
        };
        if tx.send(update).await.is_err() {
            link.sent.remove(&shape.id);
        }
    }
}

fn remove_update(id: ShapeId, channel: &str) -> InterestUpdate {
    InterestUpdate {
        kind: Some(interest_update::Kind::Remove(ShapeRef {
            id: bytes::Bytes::copy_from_slice(&id.0),
            channel: channel.to_owned(),
        })),
    }
}

/// Keeps one interest stream to `member` open, reconnecting with backoff.
async fn run_link(
    edge_id: String,
    member: Member,
    generation: u64,
    events: mpsc::Sender<LinkEvent>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut was_up = false;
        let attempt = async {
            let mut client = InterestClient::connect(format!("http://{}", member.addr)).await?;
            let (tx, rx) = mpsc::channel(LINK_QUEUE);
            tx.send(InterestUpdate {
                kind: Some(interest_update::Kind::Hello(InterestHello {
                    edge_id: edge_id.clone(),
                })),
            })
            .await
            .map_err(|_| anyhow_free("link queue closed"))?;
            let mut notices = client.stream(ReceiverStream::new(rx)).await?.into_inner();
            let _ = events
                .send(LinkEvent::Up(member.id.clone(), generation, tx))
                .await;
            was_up = true;
            tracing::info!(router = %member.id, addr = %member.addr, "interest stream up");
            while let Some(notice) = notices.next().await {
                match notice?.kind {
                    Some(interest_notice::Kind::Rejected(r)) => {
                        tracing::warn!(router = %member.id, reason = %r.reason, "router rejected a shape");
                    }
                    None => {}
                }
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        };
        let result = tokio::select! {
            () = stop.cancelled() => return,
            r = attempt => r,
        };
        let _ = events
            .send(LinkEvent::Down(member.id.clone(), generation))
            .await;
        match result {
            Ok(()) => tracing::warn!(router = %member.id, "interest stream ended; reconnecting"),
            Err(e) => {
                tracing::warn!(router = %member.id, error = %e, "interest stream failed; reconnecting")
            }
        }
        if was_up {
            backoff = Duration::from_millis(100);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn anyhow_free(message: &str) -> Box<dyn std::error::Error + Send + Sync> {
    message.into()
}
