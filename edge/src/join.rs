//! [`join_woken`]: runs two futures to completion, polling each only when its own waker
//! fired.
//!
//! `tokio::join!` polls every branch whenever any branch is woken. A connection joins
//! its protocol reader with its outbound writer, and the writer is woken for every
//! batch of deliveries: with `join!` each of those wakes also re-polled the reader
//! (its timers, its close signals and the socket), once per connection per batch.
//! Here each branch gets a waker of its own that marks it and wakes the task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// One branch's waker: marks the branch and wakes the joining task.
#[derive(Debug, Default)]
struct Branch {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Branch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

pin_project_lite::pin_project! {
    /// The future of [`join_woken`]. A struct rather than an `async fn`: an `async fn`
    /// would keep both futures twice in its state (as arguments and as pinned locals),
    /// about 2 KB more per connection.
    #[must_use = "futures do nothing unless polled"]
    pub struct JoinWoken<A, B> {
        #[pin]
        a: A,
        #[pin]
        b: B,
        branches: [Arc<Branch>; 2],
        wakers: [Waker; 2],
        done: [bool; 2],
    }
}

/// Runs `a` and `b` concurrently in the calling task until both are done.
pub fn join_woken<A, B>(a: A, b: B) -> JoinWoken<A, B>
where
    A: Future<Output = ()>,
    B: Future<Output = ()>,
{
    let branches = [Arc::new(Branch::default()), Arc::new(Branch::default())];
    for branch in &branches {
        // Both are polled once to start.
        branch.woken.store(true, Ordering::Relaxed);
    }
    let wakers = [
        Waker::from(branches[0].clone()),
        Waker::from(branches[1].clone()),
    ];
    JoinWoken {
        a,
        b,
        branches,
        wakers,
        done: [false, false],
    }
}

impl<A, B> Future for JoinWoken<A, B>
where
    A: Future<Output = ()>,
    B: Future<Output = ()>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        // Registered before the flags are read: a wake in between is not lost.
        for branch in this.branches.iter() {
            branch.task.register(cx.waker());
        }
        let [done_a, done_b] = this.done;
        poll_branch(this.a, &this.branches[0], &this.wakers[0], done_a);
        poll_branch(this.b, &this.branches[1], &this.wakers[1], done_b);
        if *done_a && *done_b {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Polls one branch if it was woken (or never polled), and notes when it is done.
fn poll_branch<F: Future<Output = ()>>(
    fut: Pin<&mut F>,
    branch: &Branch,
    waker: &Waker,
    done: &mut bool,
) {
    if *done || !branch.woken.swap(false, Ordering::AcqRel) {
        return;
    }
    *done = fut.poll(&mut Context::from_waker(waker)).is_ready();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A future that counts its polls and finishes when `release` is notified.
    async fn counted(polls: Arc<AtomicUsize>, release: Arc<tokio::sync::Notify>) {
        let mut notified = pin!(release.notified());
        poll_fn(|cx| {
            polls.fetch_add(1, Ordering::Relaxed);
            notified.as_mut().poll(cx)
        })
        .await;
    }

    #[tokio::test]
    async fn a_branch_is_not_polled_for_the_other_branchs_wakes() {
        let (polls_a, polls_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (release_a, release_b) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let ticks = Arc::new(tokio::sync::Notify::new());
        let b = {
            let (polls_b, release_b, ticks) = (polls_b.clone(), release_b.clone(), ticks.clone());
            async move {
                // Woken 10 times before it finishes.
                for _ in 0..10 {
                    ticks.notified().await;
                    polls_b.fetch_add(1, Ordering::Relaxed);
                }
                release_b.notified().await;
            }
        };
        let joined = tokio::spawn(join_woken(counted(polls_a.clone(), release_a.clone()), b));
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            ticks.notify_one();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(polls_b.load(Ordering::Relaxed), 10);
        assert_eq!(
            polls_a.load(Ordering::Relaxed),
            1,
            "a was polled for b's wakes"
        );
        assert!(!joined.is_finished());
        release_a.notify_one();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!joined.is_finished(), "finished before b did");
        release_b.notify_one();
        let finished = tokio::time::timeout(Duration::from_secs(5), joined).await;
        assert!(matches!(finished, Ok(Ok(()))));
        assert_eq!(polls_a.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn ready_branches_finish_at_once() {
        let finished =
            tokio::time::timeout(Duration::from_secs(5), join_woken(async {}, async {})).await;
        assert!(finished.is_ok());
    }
}
