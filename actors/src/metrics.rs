//! Metric names, in one place so dashboards and code agree.

/// Actors started (activations and restarts), by `kind`.
pub const ACTOR_STARTS: &str = "flashcore_actor_starts_total";
/// Actors stopped cleanly (passivation, shutdown), by `kind`.
pub const ACTOR_STOPS: &str = "flashcore_actor_stops_total";
/// Actors that failed (panic or handler error), by `kind`.
pub const ACTOR_FAILURES: &str = "flashcore_actor_failures_total";
/// Failed actors restarted by their supervisor, by `kind`.
pub const ACTOR_RESTARTS: &str = "flashcore_actor_restarts_total";
/// Entities quarantined after exceeding restart intensity, by `kind`.
pub const ACTOR_QUARANTINES: &str = "flashcore_actor_quarantines_total";
/// Actors alive now, by `kind`.
pub const ACTORS_ACTIVE: &str = "flashcore_actors_active";
/// Carts passivated after idling.
pub const ACTOR_PASSIVATIONS: &str = "flashcore_actor_passivations_total";
/// Messages refused by a gate, by `kind` and `reason` (`busy`, `quarantined`).
pub const ACTOR_REJECTIONS: &str = "flashcore_actor_rejections_total";
/// Journal batches committed.
pub const JOURNAL_BATCHES: &str = "flashcore_journal_batches_total";
/// Entries per journal batch.
pub const JOURNAL_BATCH_SIZE: &str = "flashcore_journal_batch_entries";
/// Journal batch commit latency.
pub const JOURNAL_COMMIT_SECONDS: &str = "flashcore_journal_commit_duration_seconds";
/// Journal batches that failed.
pub const JOURNAL_ERRORS: &str = "flashcore_journal_errors_total";
/// Snapshots written by the write-behind flusher.
pub const SNAPSHOTS_WRITTEN: &str = "flashcore_snapshots_written_total";
/// Write-behind flush failures.
pub const SNAPSHOT_ERRORS: &str = "flashcore_snapshot_errors_total";
/// Time one write-behind flush took.
pub const FLUSH_SECONDS: &str = "flashcore_flush_duration_seconds";
/// Orders placed.
pub const ORDERS: &str = "flashcore_orders_total";
/// Checkouts refused, by `reason`.
pub const CHECKOUT_FAILURES: &str = "flashcore_checkout_failures_total";
/// Holds that lapsed.
pub const HOLDS_EXPIRED: &str = "flashcore_holds_expired_total";
