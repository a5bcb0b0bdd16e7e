//! `SelectionPlan::project`: a resolved payload onto a subscription's selection set.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use serde_json::json;

pub fn bench(c: &mut Criterion) {
    let schema = crate::example_schema();
    let chat = json!({"room": "lobby", "from": "ann", "text": "12:1733300000000000"});
    let items: Vec<_> = (0..10)
        .map(|i| json!({"sku": format!("sku-{i}"), "qty": i}))
        .collect();
    let order = json!({
        "id": "42", "status": "paid", "cents": 1999, "total": 19.99,
        "items": items, "note": "12:1733300000000000"
    });
    let cases = [
        (
            "chat_one_field",
            r#"subscription { chatMessage(room: "lobby") { text } }"#,
            &chat,
        ),
        (
            "chat_aliases_typename",
            r#"subscription { m: chatMessage(room: "lobby") { __typename who: from t: text room } }"#,
            &chat,
        ),
        (
            "order_fragments_10_items",
            r#"subscription { orderUpdated(id: "42") { ...O items { sku qty } } }
               fragment O on Order { id status cents total note }"#,
            &order,
        ),
    ];
    let mut group = c.benchmark_group("projection");
    group.throughput(Throughput::Elements(1));
    for (name, query, value) in cases {
        let (prepared, _) = crate::prepared(&schema, query);
        let plan = prepared.plan.clone();
        group.bench_function(name, |b| {
            b.iter(|| black_box(plan.project(black_box(value))))
        });
    }
    group.finish();
}
