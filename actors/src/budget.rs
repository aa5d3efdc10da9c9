//! The checkout's latency budget: the request's deadline split into one budget
//! per step, each carried down to the call it bounds.
//!
//! | step | bounds | out of budget |
//! |---|---|---|
//! | `prepare` | Prepare on every SKU (all or nothing) | holds returned to the cart, 503 |
//! | `payment` | the provider's authorization | holds returned, 503 (an authorization that may have happened is voided or recorded) |
//! | `journal` | the wait for the order's batch to commit | outcome unknown: holds and authorization kept until the journal answers, 503 |
//! | `commit` | delivering the order's facts to its SKUs | none: the order is durable and answered; delivery goes on in the background |
//!
//! Each step's time is recorded in `flashcore_checkout_step_duration_seconds{step}`
//! and each overrun in `flashcore_checkout_budget_exceeded_total{step}`, so the
//! budgets can be checked against the checkout SLO (p95 < 500 ms).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics as m;

/// Per-step budgets of a checkout (`FLASHCORE_BUDGET_*_MS`, README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutBudget {
    /// Prepare on every SKU of the cart.
    pub prepare: Duration,
    /// The payment provider's authorization (the test provider's `tok_slow` takes 2 s).
    pub payment: Duration,
    /// Waiting for the order's journal batch to commit.
    pub journal: Duration,
    /// Delivering the committed facts to the SKU actors before answering.
    pub commit: Duration,
}

impl Default for CheckoutBudget {
    fn default() -> Self {
        CheckoutBudget {
            prepare: Duration::from_millis(1_000),
            payment: Duration::from_millis(3_000),
            journal: Duration::from_millis(2_000),
            commit: Duration::from_millis(500),
        }
    }
}

impl CheckoutBudget {
    /// The whole checkout's worst case: the sum of its steps.
    pub fn total(&self) -> Duration {
        self.prepare + self.payment + self.journal + self.commit
    }
}

/// A checkout step, as named in metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Prepare on every SKU.
    Prepare,
    /// Payment authorization.
    Payment,
    /// The journal wait.
    Journal,
    /// Commit delivery.
    Commit,
}

impl Step {
    /// The `step` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::Payment => "payment",
            Step::Journal => "journal",
            Step::Commit => "commit",
        }
    }

    /// This step's budget in `budget`.
    pub fn budget(self, budget: &CheckoutBudget) -> Duration {
        match self {
            Step::Prepare => budget.prepare,
            Step::Payment => budget.payment,
            Step::Journal => budget.journal,
            Step::Commit => budget.commit,
        }
    }
}

/// The step ran out of its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget(pub Step, pub Duration);

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "checkout step {} over its budget of {} ms", self.0.as_str(), self.1.as_millis())
    }
}

/// Runs `work` as `step` within its budget, recording its time (and its overrun).
pub async fn run<T>(step: Step, budget: &CheckoutBudget, work: impl Future<Output = T>) -> Result<T, OverBudget> {
    let limit = step.budget(budget);
    let started = Instant::now();
    let result = tokio::time::timeout(limit, work).await;
    observe(step, started.elapsed());
    result.map_err(|_| {
        metrics::counter!(m::CHECKOUT_BUDGET_EXCEEDED, "step" => step.as_str()).increment(1);
        tracing::warn!(step = step.as_str(), budget_ms = limit.as_millis() as u64, "checkout step over its budget");
        OverBudget(step, limit)
    })
}

/// Records a step's time (for steps timed elsewhere, such as a payment call that
/// carries its budget itself).
pub fn observe(step: Step, took: Duration) {
    metrics::histogram!(m::CHECKOUT_STEP_SECONDS, "step" => step.as_str()).record(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_step_within_its_budget_returns_its_value_and_one_past_it_fails() {
        let budget = CheckoutBudget { prepare: Duration::from_millis(100), ..CheckoutBudget::default() };
        assert_eq!(run(Step::Prepare, &budget, async { 7 }).await, Ok(7));
        let slow = run(Step::Prepare, &budget, tokio::time::sleep(Duration::from_secs(1))).await;
        assert_eq!(slow, Err(OverBudget(Step::Prepare, Duration::from_millis(100))));
        assert_eq!(slow.unwrap_err().to_string(), "checkout step prepare over its budget of 100 ms");
        assert_eq!(CheckoutBudget::default().total(), Duration::from_millis(6_500));
        for (step, ms) in [(Step::Prepare, 1_000), (Step::Payment, 3_000), (Step::Journal, 2_000), (Step::Commit, 500)]
        {
            assert_eq!(step.budget(&CheckoutBudget::default()), Duration::from_millis(ms));
        }
    }
}
