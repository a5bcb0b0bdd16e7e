//! Channel → partition hashing.
//!
//! `fnv1a32(channel) % partitions` is the hash NATS uses in its `partition()` subject
//! mapping, so NATS and Fanout agree on where a channel lives.

/// Default number of partitions of a cluster.
pub const DEFAULT_PARTITIONS: u32 = 64;

/// 32-bit FNV-1a of `data`.
pub fn fnv1a32(data: &[u8]) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    data.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(PRIME)
    })
}

/// Partition of `channel` among `partitions` (which must be at least 1).
pub fn partition_of(channel: &str, partitions: u32) -> u32 {
    fnv1a32(channel.as_bytes()) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_reference_vectors() {
        // Reference values of the FNV-1a 32-bit specification.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn partition_of_matches_nats_partition_mapping() {
        // Partitions that nats-server's `{{partition(64,1)}}` mapping gives subject
        // `fanout.in.<channel>` (checked against a real server in tests/nats_bus.rs).
        // NATS hashes the selected tokens concatenated without dots, so it agrees with
        // `partition_of` for channels of one subject token.
        for (channel, nats) in [
            ("lobby", 19),
            ("orders-42", 53),
            ("user_7", 32),
            ("a", 44),
            ("chat:room:9", 9),
            ("x@y=z+1", 43),
            ("orders", 44),
        ] {
            assert_eq!(partition_of(channel, 64), nats, "{channel}");
        }
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for key in ["orders.1", "orders.2", "chat.room.9"] {
            let p = partition_of(key, 64);
            assert!(p < 64);
            assert_eq!(p, partition_of(key, 64));
        }
        assert_eq!(partition_of("x", 0), 0);
    }
}
