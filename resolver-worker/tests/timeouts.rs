//! Sync resolvers that run past the timeout: the caller is answered in time, the
//! Python thread is interrupted, and later calls work again.

mod common;

use std::time::{Duration, Instant};

use common::{resolve_one, runtime};
use fanout_resolver_worker::ResolveOutcome;
use serde_json::json;

const SOURCE: &str = r#"
import time, fanout

@fanout.resolver("spin")
def spin(event, args, ctx):
    while True:
        pass

@fanout.resolver("sleepy")
def sleepy(event, args, ctx):
    time.sleep(event.get("seconds", 5))
    return {"slept": True}

@fanout.resolver("stubborn")
def stubborn(event, args, ctx):
    n = 0
    while n < 2:
        try:
            while True:
                pass
        except TimeoutError:
            n += 1   # swallows the first interruption; the watchdog tries again
    return {"interrupted": n}

@fanout.resolver("ok")
def ok(event, args, ctx):
    return {"ok": True}
"#;

const TIMEOUT: Duration = Duration::from_millis(200);

#[tokio::test]
async fn infinite_loop_is_interrupted() {
    let (_dir, rt) = runtime("spin", SOURCE, TIMEOUT);
    let started = Instant::now();
    let outcome = resolve_one(&rt, json!({}), "spin").await;
    let elapsed = started.elapsed();
    assert_eq!(outcome, ResolveOutcome::Timeout);
    assert!(
        elapsed < Duration::from_secs(1),
        "reported after {elapsed:?}"
    );
    // The loop was interrupted, so the thread is free right away.
    let started = Instant::now();
    assert_eq!(
        resolve_one(&rt, json!({}), "ok").await,
        ResolveOutcome::Value(json!({"ok": true}))
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "next call took {:?}",
        started.elapsed()
    );
    // A resolver that swallows the first TimeoutError gets another one a timeout later
    // (whether it then finishes within the caller's budget is a race).
    let outcome = resolve_one(&rt, json!({}), "stubborn").await;
    assert!(
        matches!(&outcome, ResolveOutcome::Timeout)
            || outcome == ResolveOutcome::Value(json!({"interrupted": 2})),
        "{outcome:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while resolve_one(&rt, json!({}), "ok").await != ResolveOutcome::Value(json!({"ok": true})) {
        assert!(Instant::now() < deadline, "the thread did not recover");
    }
}

#[tokio::test]
async fn blocking_sleep_is_reported_in_time_and_thread_recovers() {
    let (_dir, rt) = runtime("sleep", SOURCE, TIMEOUT);
    let started = Instant::now();
    let outcome = resolve_one(&rt, json!({"seconds": 2}), "sleepy").await;
    let elapsed = started.elapsed();
    assert_eq!(outcome, ResolveOutcome::Timeout);
    assert!(
        elapsed < Duration::from_secs(1),
        "reported after {elapsed:?}"
    );
    // time.sleep cannot be interrupted: the next call succeeds once the thread is free
    // (each attempt may itself time out while the sleep is still going).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match resolve_one(&rt, json!({}), "ok").await {
            ResolveOutcome::Value(v) => {
                assert_eq!(v, json!({"ok": true}));
                break;
            }
            ResolveOutcome::Timeout if Instant::now() < deadline => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn five_second_sleep_times_out_within_a_second() {
    let (_dir, rt) = runtime("sleep5", SOURCE, TIMEOUT);
    let started = Instant::now();
    assert_eq!(
        resolve_one(&rt, json!({"seconds": 5}), "sleepy").await,
        ResolveOutcome::Timeout
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "reported after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unfinished_calls_of_a_batch_time_out_finished_ones_are_kept() {
    let (_dir, rt) = runtime("partial", SOURCE, TIMEOUT);
    let calls = vec![
        common::call("ok", json!({})),
        common::call("sleepy", json!({})),
        common::call("ok", json!({})),
        common::call("none", json!({})),
    ];
    let started = Instant::now();
    let outcomes = common::resolve(&rt, common::event(json!({"seconds": 5})), calls).await;
    // Budget: 4 calls × 200 ms + grace.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        outcomes,
        vec![
            ResolveOutcome::Value(json!({"ok": true})),
            ResolveOutcome::Timeout,
            ResolveOutcome::Timeout,
            ResolveOutcome::NoResolver,
        ]
    );
}
