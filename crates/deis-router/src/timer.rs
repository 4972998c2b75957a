//! A connection's deadline timer. Each request sets a new deadline, but the
//! timer wheel is only touched when the timer fires: an early firing (for an
//! older, earlier deadline) re-arms it for the current one. A busy
//! keep-alive connection thus costs the wheel nothing per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::time::{Instant, Sleep};

#[derive(Default)]
pub(crate) struct LazyTimer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl LazyTimer {
    /// Ready once `deadline` has passed.
    pub(crate) fn poll_deadline(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            if sleep.deadline() > deadline {
                // A later deadline than this one: move it closer.
                sleep.as_mut().reset(deadline);
            }
            ready!(sleep.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn fires_at_the_current_deadline_whatever_came_before() {
        let mut timer = LazyTimer::default();
        let start = Instant::now();
        // An earlier deadline that was never reached (the request finished).
        let first = start + Duration::from_millis(50);
        assert!(
            poll_fn(|cx| Poll::Ready(timer.poll_deadline(first, cx)))
                .await
                .is_pending()
        );
        // The next request's deadline is later: the early firing re-arms.
        let second = start + Duration::from_millis(200);
        poll_fn(|cx| timer.poll_deadline(second, cx)).await;
        assert!(Instant::now() >= second);
        // A deadline earlier than the armed one is honoured too.
        let far = Instant::now() + Duration::from_secs(60);
        assert!(
            poll_fn(|cx| Poll::Ready(timer.poll_deadline(far, cx)))
                .await
                .is_pending()
        );
        let near = Instant::now() + Duration::from_millis(50);
        tokio::time::timeout(
            Duration::from_secs(5),
            poll_fn(|cx| timer.poll_deadline(near, cx)),
        )
        .await
        .expect("the nearer deadline fired");
        assert!(Instant::now() >= near);
    }
}
