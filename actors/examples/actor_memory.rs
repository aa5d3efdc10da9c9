//! What one idle entity costs in memory, by the parts an actor is made of: a
//! bare tokio task, a task with an unbounded mailbox that has seen one message,
//! and a ractor actor (no message yet, and after one). Issue 13 asks for 2 KiB
//! per active cart; this shows what an actor per cart costs before any cart state.
//!
//! ```text
//! cargo run --release -p flashcore-actors --example actor_memory -- [count]
//! ```
//!
//! Prints one line per kind: the RSS growth per entity, in bytes (the process
//! allocator is mimalloc, as in the `flashcore` binary). Each kind is measured
//! in a fresh process of its own, since freed memory is not given back.

use ractor::{Actor, ActorProcessingErr, ActorRef};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A message the size of a typical entity request.
#[allow(dead_code)]
enum Msg {
    Request([u8; 120]),
    Ping,
}

struct Idle;

impl Actor for Idle {
    type Msg = Msg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Msg>, (): ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    kib * 1024
}

/// Keeps `count` entities of `kind` alive and returns the RSS growth per entity.
async fn per_entity(kind: &str, count: usize) -> u64 {
    let before = rss_bytes();
    let mut actors = Vec::with_capacity(count);
    let mut mailboxes = Vec::with_capacity(count);
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        match kind {
            "task" => {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                tasks.push((tx, tokio::spawn(async move { drop(rx.await) })));
            }
            "task + mailbox" => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
                let handle = tokio::spawn(async move { while rx.recv().await.is_some() {} });
                let _ = tx.send(Msg::Ping);
                mailboxes.push((tx, handle));
            }
            "ractor actor" | "ractor actor after a message" => {
                let Ok((actor, handle)) = Actor::spawn(None, Idle, ()).await else { continue };
                if kind == "ractor actor after a message" {
                    let _ = actor.cast(Msg::Ping);
                }
                actors.push((actor, handle));
            }
            _ => {}
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let grown = rss_bytes().saturating_sub(before) / count.max(1) as u64;
    drop((actors, mailboxes, tasks));
    grown
}

const KINDS: [&str; 4] = ["task", "task + mailbox", "ractor actor", "ractor actor after a message"];

#[tokio::main(worker_threads = 2)]
async fn main() {
    let count: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    if let Some(kind) = std::env::args().nth(2) {
        println!("{kind:<30} {:>6} bytes each ({count} alive)", per_entity(&kind, count).await);
        return;
    }
    let Ok(me) = std::env::current_exe() else { return };
    for kind in KINDS {
        let out = std::process::Command::new(&me).arg(count.to_string()).arg(kind).output();
        if let Ok(out) = out {
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
}
