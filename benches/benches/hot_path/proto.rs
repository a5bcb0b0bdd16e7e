//! Protobuf encode/decode of a `Delivery` (one per event and edge on the bus).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use fanout_proto::v1::{Delivery, ShapePayload};
use prost::Message;

fn delivery(items: usize) -> Delivery {
    Delivery {
        channel: "chat.lobby".into(),
        offset: 123_456,
        epoch: 7,
        seq: 99_001,
        router: "router-0".into(),
        items: (0..items)
            .map(|i| ShapePayload {
                shape_id: Bytes::from(vec![i as u8; 16]),
                payload: Bytes::from(format!(
                    r#"{{"data":{{"chatMessage":{{"s{i}":"12:1733300000000000"}}}}}}"#
                )),
            })
            .collect(),
        published_at_us: 1_733_300_000_000_000,
    }
}

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("delivery_proto");
    group.throughput(Throughput::Elements(1));
    for items in [1usize, 100] {
        let d = delivery(items);
        let encoded = Bytes::from(d.encode_to_vec());
        group.bench_with_input(BenchmarkId::new("encode", items), &d, |b, d| {
            b.iter(|| black_box(d.encode_to_vec()))
        });
        group.bench_with_input(BenchmarkId::new("decode", items), &encoded, |b, e| {
            b.iter(|| black_box(Delivery::decode(e.clone())))
        });
    }
    group.finish();
}
