//! Partition → router by rendezvous (highest-random-weight) hashing.
//!
//! Each member scores every partition with [`weight`]; the highest score owns it (ties,
//! which need a 64-bit collision, go to the smaller id). Adding a member moves only the
//! partitions it now wins; removing one moves only the partitions it owned.
//!
//! The weight must be identical in every process, on every platform and across Rust
//! versions, so it is spelled out here rather than taken from `std::hash`: FNV-1a 64 over
//! `id bytes ‖ 0xFF ‖ partition as 4 big-endian bytes`, then the 64-bit finalizer of
//! MurmurHash3 (`fmix64`) so that ids differing only in their last bytes still spread
//! evenly. `0xFF` never occurs in UTF-8, so no two (id, partition) pairs share an input.

use super::{Member, MemberSet};

/// 64-bit FNV-1a of `data`, continuing from `hash` (start with [`FNV64_OFFSET`]).
fn fnv1a64(hash: u64, data: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    data.iter()
        .fold(hash, |h, byte| (h ^ u64::from(*byte)).wrapping_mul(PRIME))
}

/// FNV-1a 64 offset basis.
const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Score of `member_id` for `partition`; the highest score owns the partition.
pub fn weight(member_id: &str, partition: u32) -> u64 {
    let h = fnv1a64(FNV64_OFFSET, member_id.as_bytes());
    let h = fnv1a64(h, &[0xff]);
    fmix64(fnv1a64(h, &partition.to_be_bytes()))
}

/// The member that owns `partition`, or `None` when there is no member.
pub fn owner(partition: u32, members: &MemberSet) -> Option<&Member> {
    members.iter().max_by(|a, b| {
        weight(&a.id, partition)
            .cmp(&weight(&b.id, partition))
            // Equal weights: the smaller id wins (max_by keeps the later of equals).
            .then_with(|| b.id.cmp(&a.id))
    })
}

/// One partition whose owner differs between two maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The partition.
    pub partition: u32,
    /// Owner before (`None`: there was no member).
    pub from: Option<String>,
    /// Owner after (`None`: no member is left).
    pub to: Option<String>,
}

/// The owner of every partition for one member set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionMap {
    owners: Vec<Option<String>>,
}

impl PartitionMap {
    /// Owners of partitions `0..partitions` among `members`.
    pub fn new(partitions: u32, members: &MemberSet) -> Self {
        let owners = (0..partitions)
            .map(|p| owner(p, members).map(|m| m.id.clone()))
            .collect();
        Self { owners }
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        u32::try_from(self.owners.len()).unwrap_or(u32::MAX)
    }

    /// Id of the owner of `partition` (`None` when out of range or there is no member).
    pub fn owner(&self, partition: u32) -> Option<&str> {
        let index = usize::try_from(partition).ok()?;
        self.owners.get(index)?.as_deref()
    }

    /// Partitions owned by `member_id`, ascending.
    pub fn owned_by<'a>(&'a self, member_id: &'a str) -> impl Iterator<Item = u32> + 'a {
        (0u32..)
            .zip(&self.owners)
            .filter(move |(_, o)| o.as_deref() == Some(member_id))
            .map(|(p, _)| p)
    }

    /// Partitions whose owner differs from `self` in `next`, ascending. Partitions
    /// present in only one of the maps count as moved from or to `None`.
    pub fn diff(&self, next: &PartitionMap) -> Vec<Move> {
        let len = self.owners.len().max(next.owners.len());
        (0u32..)
            .zip(0..len)
            .filter_map(|(partition, i)| {
                let from = self.owners.get(i).cloned().flatten();
                let to = next.owners.get(i).cloned().flatten();
                (from != to).then_some(Move {
                    partition,
                    from,
                    to,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> MemberSet {
        MemberSet::new(ids.iter().map(|id| Member::new(*id, format!("{id}:50051"))))
    }

    #[test]
    fn hashes_are_pinned() {
        // FNV-1a 64 reference vectors.
        assert_eq!(fnv1a64(FNV64_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV64_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(FNV64_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
        // The weight itself: changing it reshuffles every cluster, so it is pinned.
        assert_eq!(weight("router-0", 0), PINNED_ROUTER0_P0);
        assert_eq!(weight("router-1", 63), PINNED_ROUTER1_P63);
    }

    // Computed by an independent implementation of the documented formula.
    const PINNED_ROUTER0_P0: u64 = 0xb0a2_b072_f193_517f;
    const PINNED_ROUTER1_P63: u64 = 0x3da1_d2e7_f18d_485c;

    #[test]
    fn owner_is_stable_and_independent_of_input_order() {
        let a = set(&["router-0", "router-1", "router-2"]);
        let b = set(&["router-2", "router-0", "router-1"]);
        for p in 0..64 {
            assert_eq!(owner(p, &a), owner(p, &b));
            assert_eq!(owner(p, &a), owner(p, &a));
        }
        assert_eq!(PartitionMap::new(64, &a), PartitionMap::new(64, &b));
        assert!(owner(0, &MemberSet::default()).is_none());
    }

    #[test]
    fn partitions_are_balanced() {
        for ids in [
            ["router-0", "router-1", "router-2"],
            [
                "fanout-router-7c9f-abcde",
                "fanout-router-7c9f-fghij",
                "fanout-router-7c9f-klmno",
            ],
            ["a", "b", "c"],
        ] {
            let members = set(&ids);
            let map = PartitionMap::new(64, &members);
            for id in ids {
                let n = map.owned_by(id).count();
                assert!((10..=35).contains(&n), "{id} owns {n} of 64 among {ids:?}");
            }
        }
    }

    #[test]
    fn removing_a_member_moves_only_its_partitions() {
        let before = PartitionMap::new(64, &set(&["router-0", "router-1", "router-2"]));
        let after = PartitionMap::new(64, &set(&["router-0", "router-2"]));
        let moved = before.diff(&after);
        let owned: Vec<u32> = before.owned_by("router-1").collect();
        assert_eq!(moved.iter().map(|m| m.partition).collect::<Vec<_>>(), owned);
        assert!(moved.iter().all(|m| m.from.as_deref() == Some("router-1")));
        assert!(moved.iter().all(|m| m.to.as_deref() != Some("router-1")));
    }

    #[test]
    fn adding_a_member_moves_only_partitions_it_takes() {
        let before = PartitionMap::new(64, &set(&["router-0", "router-1", "router-2"]));
        let after = PartitionMap::new(64, &set(&["router-0", "router-1", "router-2", "router-3"]));
        let moved = before.diff(&after);
        assert!(!moved.is_empty());
        assert!(moved.iter().all(|m| m.to.as_deref() == Some("router-3")));
        assert_eq!(moved.len(), after.owned_by("router-3").count());
    }

    #[test]
    fn diff_covers_empty_and_resized_maps() {
        let empty = PartitionMap::new(4, &MemberSet::default());
        let one = PartitionMap::new(4, &set(&["r"]));
        assert_eq!(empty.diff(&one).len(), 4);
        assert!(one.diff(&one).is_empty());
        assert_eq!(one.owner(3), Some("r"));
        assert_eq!(one.owner(4), None);
        let bigger = PartitionMap::new(6, &set(&["r"]));
        assert_eq!(one.diff(&bigger).len(), 2);
    }
}
