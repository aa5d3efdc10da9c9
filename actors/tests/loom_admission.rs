//! Loom model of a node's admission protocol ([`flashcore_actors::admission`]):
//! a hand-off that flips the phase and then sees nothing in flight never misses
//! a request that was admitted, and no request is admitted after it.
//!
//! Each request does its "work" (a `Relaxed` counter, so only the protocol's own
//! orderings can make it visible) between entering and leaving; the hand-off
//! reads the counter once it has drained. A request admitted after the drain, or
//! one the drain did not wait for, shows up as a count the hand-off missed.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p flashcore-actors --test loom_admission --release`
#![cfg(loom)]

use flashcore_actors::admission::Admissions;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

const SERVING: u8 = 2;
const HANDING_OFF: u8 = 3;

fn request(adm: &Admissions, work: &AtomicUsize) -> bool {
    match adm.enter(|p| p == SERVING) {
        Ok(()) => {
            work.fetch_add(1, Ordering::Relaxed);
            adm.leave();
            true
        }
        Err(_) => false,
    }
}

#[test]
fn a_drained_hand_off_saw_every_admitted_request_and_none_comes_after() {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(|| {
        let adm = Arc::new(Admissions::new(SERVING));
        let work = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..2)
            .map(|_| {
                let (adm, work) = (Arc::clone(&adm), Arc::clone(&work));
                thread::spawn(move || request(&adm, &work))
            })
            .collect();
        // The hand-off: flip, then wait for the count.
        assert!(adm.transition(SERVING, HANDING_OFF));
        while adm.inflight() != 0 {
            thread::yield_now();
        }
        let seen = work.load(Ordering::Relaxed);
        let admitted = clients.into_iter().map(|c| c.join().unwrap()).filter(|a| *a).count();
        assert_eq!(seen, admitted, "the hand-off drained before an admitted request finished");
        assert_eq!(adm.inflight(), 0);
    });
}

#[test]
fn a_request_after_the_flip_is_never_admitted() {
    loom::model(|| {
        let adm = Arc::new(Admissions::new(SERVING));
        let flipped = {
            let adm = Arc::clone(&adm);
            thread::spawn(move || adm.transition(SERVING, HANDING_OFF))
        };
        assert!(flipped.join().unwrap());
        let work = AtomicUsize::new(0);
        assert!(!request(&adm, &work), "admitted after the hand-off began");
        assert_eq!(adm.inflight(), 0, "a refused request leaves no count behind");
    });
}
