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
/// Journal batches committed, one transaction each (entries per batch: `JOURNAL_BATCH_SIZE`).
pub const JOURNAL_BATCHES: &str = "flashcore_journal_batches_total";
/// Entries per journal batch.
pub const JOURNAL_BATCH_SIZE: &str = "flashcore_journal_batch_entries";
/// Journal batch commit latency.
pub const JOURNAL_COMMIT_SECONDS: &str = "flashcore_journal_commit_duration_seconds";
/// Journal batches that failed.
pub const JOURNAL_ERRORS: &str = "flashcore_journal_errors_total";
/// Snapshots written by the write-behind flusher.
pub const SNAPSHOTS_WRITTEN: &str = "flashcore_snapshots_written_total";
/// Snapshot save chunks that failed; their records are retried on the next flush.
pub const SNAPSHOT_ERRORS: &str = "flashcore_snapshot_errors_total";
/// Time one write-behind flush took.
pub const FLUSH_SECONDS: &str = "flashcore_flush_duration_seconds";
/// Orders placed: counted once the order is journalled and its cart frozen.
pub const ORDERS: &str = "flashcore_orders_total";
/// Checkouts whose journal write had an unknown outcome and could not be
/// reconciled at once; their holds and authorization are kept until it can.
pub const CHECKOUTS_UNRESOLVED: &str = "flashcore_checkouts_unresolved_total";
/// A dependency's circuit breaker, by `dependency`: 0 closed, 1 half-open, 2 open.
pub const CIRCUIT_STATE: &str = "flashcore_circuit_state";
/// Circuit breaker transitions, by `dependency` and `to` (`open`, `half_open`, `closed`).
pub const CIRCUIT_TRANSITIONS: &str = "flashcore_circuit_transitions_total";
/// Calls refused at once by an open breaker, by `dependency`.
pub const CIRCUIT_REJECTIONS: &str = "flashcore_circuit_rejections_total";
/// Time each checkout step took, by `step` (`prepare`, `payment`, `journal`, `commit`).
pub const CHECKOUT_STEP_SECONDS: &str = "flashcore_checkout_step_duration_seconds";
/// Checkout steps that ran out of their budget, by `step`.
pub const CHECKOUT_BUDGET_EXCEEDED: &str = "flashcore_checkout_budget_exceeded_total";
/// Payment authorizations not voided after their order failed: waiting for an operator.
pub const PAYMENTS_UNVOIDED: &str = "flashcore_payments_unvoided";
/// Voids that failed and were retried.
pub const PAYMENT_VOID_RETRIES: &str = "flashcore_payment_void_retries_total";
/// Checkouts refused, by `reason`.
pub const CHECKOUT_FAILURES: &str = "flashcore_checkout_failures_total";
/// Holds that lapsed at their expiry, on a SKU's timer or at its recovery.
pub const HOLDS_EXPIRED: &str = "flashcore_holds_expired_total";
/// Writes refused because this node no longer held the lease, by `by`: `node`
/// (it knew and did not send) or `store` (the store's epoch check refused it).
pub const FENCED_WRITES: &str = "flashcore_fenced_writes_total";
/// 1 while this node holds the store's leases, else 0.
pub const LEASE_OWNED: &str = "flashcore_lease_owned";
/// Times this node took the leases.
pub const LEASE_ACQUISITIONS: &str = "flashcore_lease_acquisitions_total";
/// Renewals that extended the deadline while this node held the leases.
pub const LEASE_RENEWALS: &str = "flashcore_lease_renewals_total";
/// Lease renewals that failed (store unreachable or slow).
pub const LEASE_RENEW_FAILURES: &str = "flashcore_lease_renew_failures_total";
/// Times this node lost the leases (deadline passed, taken over, fenced write).
pub const LEASE_LOSSES: &str = "flashcore_lease_losses_total";
/// Times this node's share of the shards changed (cluster mode).
pub const SHARD_MOVES: &str = "flashcore_shard_moves_total";
/// Shards this node holds the leases of.
pub const SHARDS_OWNED: &str = "flashcore_shards_owned";
/// Seconds from the start of a graceful hand-off to the release of the leases.
pub const HANDOFF_SECONDS: &str = "flashcore_lease_handoff_duration_seconds";
/// Seconds from taking the leases to serving (recovery on start or take-over).
pub const TAKEOVER_SECONDS: &str = "flashcore_lease_takeover_recovery_duration_seconds";
/// Broken invariants found, by `kind` (`oversold`).
pub const INVARIANT_VIOLATIONS: &str = "flashcore_invariant_violations_total";
/// Units a SKU's journal says were sold beyond its total, by `sku` (0 normally).
pub const OVERSOLD_UNITS: &str = "flashcore_sku_oversold_units";
/// Calls sent to the node that holds an entity's shard, by `op` and `outcome`
/// (`ok`, `refused`: the callee's own error, `elsewhere`: it no longer holds
/// the shard, `failed`: the transport).
pub const FORWARDED: &str = "flashcore_forwarded_requests_total";
/// How long a call to another node took, by `op`.
pub const FORWARD_SECONDS: &str = "flashcore_forwarded_request_duration_seconds";
/// Holds prepared for another node's order that this node settled itself from
/// the journal after the order's deadline, by `outcome` (`committed`, `aborted`).
pub const REMOTE_PREPARES_SETTLED: &str = "flashcore_remote_prepares_settled_total";
