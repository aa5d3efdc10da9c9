//! The checkout's side of the payment provider: authorization with a timeout
//! (the payment budget, carried by the provider's breaker) and a bounded retry
//! only where the provider's idempotency makes it safe, and voids that are
//! retried until they succeed or are recorded for an operator.
//!
//! Nothing is charged twice: an authorization is retried only if the provider
//! keys authorizations by order id ([`Payments::idempotent_authorize`]); a void
//! may be repeated at will. An authorization whose outcome is unknown (the
//! provider did not answer within the budget) has no reference to void: it is
//! recorded for an operator at once, as is a void that kept failing.
//! `GET /v1/admin/dependencies` lists them; `flashcore_payments_unvoided` counts them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashcore_domain::OrderId;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::metrics as m;
use crate::ports::{PaymentError, PaymentRequest, Payments};

/// How failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts of an idempotent authorization, the first included.
    pub authorize_attempts: u32,
    /// Attempts of a void before it is recorded for an operator.
    pub void_attempts: u32,
    /// The first backoff; doubled after each failure.
    pub backoff: Duration,
    /// How often recorded voids are tried again.
    pub sweep_every: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            authorize_attempts: 3,
            void_attempts: 5,
            backoff: Duration::from_millis(100),
            sweep_every: Duration::from_secs(30),
        }
    }
}

/// An authorization that was not voided though its order failed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnvoidedAuthorization {
    /// The order it was for (never journaled).
    pub order_id: String,
    /// The provider's reference; `None` if the authorization's outcome is
    /// unknown (timed out): look it up at the provider by order id.
    pub reference: Option<String>,
    /// Void attempts so far.
    pub attempts: u32,
    /// Why the last one failed.
    pub last_error: String,
}

/// The payment gateway: one per engine, shared by every cart.
#[derive(Clone)]
pub struct PaymentGateway {
    payments: Arc<dyn Payments>,
    policy: RetryPolicy,
    unvoided: Arc<Mutex<Vec<UnvoidedAuthorization>>>,
}

impl std::fmt::Debug for PaymentGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentGateway").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl PaymentGateway {
    /// A gateway over `payments` (already behind its breaker) and its sweeper,
    /// which retries recorded voids every `policy.sweep_every`.
    pub fn start(payments: Arc<dyn Payments>, policy: RetryPolicy) -> (Self, JoinHandle<()>) {
        let gw = PaymentGateway { payments, policy, unvoided: Arc::new(Mutex::new(Vec::new())) };
        metrics::gauge!(m::PAYMENTS_UNVOIDED).set(0.0);
        let sweeper = gw.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(policy.sweep_every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                sweeper.sweep().await;
            }
        });
        (gw, task)
    }

    /// Authorizes `req`; a provider failure is retried with backoff only if
    /// the provider's authorizations are idempotent.
    pub async fn authorize(&self, req: &PaymentRequest) -> Result<String, PaymentError> {
        let attempts = if self.payments.idempotent_authorize() { self.policy.authorize_attempts.max(1) } else { 1 };
        let mut delay = self.policy.backoff;
        let mut attempt = 1;
        loop {
            match self.payments.authorize(req).await {
                Err(PaymentError::Provider(e)) if attempt < attempts => {
                    tracing::warn!(order.id = %req.order_id, attempt, error = %e, "authorization retried");
                }
                Err(PaymentError::TimedOut(e)) => {
                    self.record(UnvoidedAuthorization {
                        order_id: req.order_id.to_string(),
                        reference: None,
                        attempts: 0,
                        last_error: format!("authorization outcome unknown: {e}"),
                    });
                    return Err(PaymentError::TimedOut(e));
                }
                other => return other,
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    /// Voids `reference` (its order `order` failed): once now; if that fails,
    /// again in the background with backoff, and recorded for an operator if it
    /// keeps failing (the sweeper goes on trying).
    pub async fn void(&self, order: OrderId, reference: &str) {
        let Err(e) = self.payments.void(reference).await else { return };
        metrics::counter!(m::PAYMENT_VOID_RETRIES).increment(1);
        tracing::warn!(order.id = %order, error = %e, "void failed; retrying in the background");
        let gw = self.clone();
        let reference = reference.to_owned();
        tokio::spawn(async move {
            let mut delay = gw.policy.backoff;
            let mut last = e.to_string();
            for attempt in 2..=gw.policy.void_attempts.max(1) {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                match gw.payments.void(&reference).await {
                    Ok(()) => {
                        tracing::info!(order.id = %order, attempt, "void succeeded on retry");
                        return;
                    }
                    Err(e) => {
                        metrics::counter!(m::PAYMENT_VOID_RETRIES).increment(1);
                        last = e.to_string();
                    }
                }
            }
            tracing::error!(order.id = %order, error = %last, "void keeps failing; recorded for an operator");
            gw.record(UnvoidedAuthorization {
                order_id: order.to_string(),
                reference: Some(reference),
                attempts: gw.policy.void_attempts.max(1),
                last_error: last,
            });
        });
    }

    /// Authorizations waiting for an operator (or the next sweep).
    pub fn unvoided(&self) -> Vec<UnvoidedAuthorization> {
        self.lock().clone()
    }

    /// Tries every recorded void once more; drops those that succeed.
    pub async fn sweep(&self) {
        let pending = self.unvoided();
        for rec in pending {
            let Some(reference) = rec.reference.as_deref() else { continue };
            let outcome = self.payments.void(reference).await;
            let mut list = self.lock();
            if let Some(slot) = list.iter_mut().position(|r| r.reference.as_deref() == Some(reference)) {
                match outcome {
                    Ok(()) => {
                        list.remove(slot);
                        tracing::info!(order.id = %rec.order_id, "recorded void succeeded");
                    }
                    Err(e) => {
                        list[slot].attempts += 1;
                        list[slot].last_error = e.to_string();
                    }
                }
            }
            metrics::gauge!(m::PAYMENTS_UNVOIDED).set(list.len() as f64);
        }
    }

    fn record(&self, rec: UnvoidedAuthorization) {
        let mut list = self.lock();
        list.push(rec);
        metrics::gauge!(m::PAYMENTS_UNVOIDED).set(list.len() as f64);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<UnvoidedAuthorization>> {
        self.unvoided.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use flashcore_domain::{Currency, Money};

    use super::*;

    /// A provider that fails its first `fail_first` calls of each kind.
    #[derive(Default)]
    struct Flaky {
        idempotent: bool,
        fail_first: u32,
        authorizations: AtomicU32,
        voids: AtomicU32,
        hang: bool,
    }

    #[async_trait]
    impl Payments for Flaky {
        async fn authorize(&self, _req: &PaymentRequest) -> Result<String, PaymentError> {
            if self.hang {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            let n = self.authorizations.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first { Err(PaymentError::Provider("flaky".into())) } else { Ok(format!("ref{n}")) }
        }
        async fn void(&self, _reference: &str) -> Result<(), PaymentError> {
            let n = self.voids.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first { Err(PaymentError::Provider("flaky".into())) } else { Ok(()) }
        }
        fn idempotent_authorize(&self) -> bool {
            self.idempotent
        }
    }

    fn req() -> PaymentRequest {
        PaymentRequest { order_id: OrderId::new(), amount: Money::zero(Currency::EUR), token: "tok_visa".into() }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { sweep_every: Duration::from_secs(3600), ..RetryPolicy::default() }
    }

    #[tokio::test(start_paused = true)]
    async fn authorization_is_retried_only_when_the_provider_is_idempotent() {
        let once = Arc::new(Flaky { fail_first: 1, ..Flaky::default() });
        let (gw, _t) = PaymentGateway::start(once.clone(), policy());
        assert!(matches!(gw.authorize(&req()).await, Err(PaymentError::Provider(_))));
        assert_eq!(once.authorizations.load(Ordering::SeqCst), 1, "never twice: it could charge twice");

        let idem = Arc::new(Flaky { fail_first: 2, idempotent: true, ..Flaky::default() });
        let (gw, _t) = PaymentGateway::start(idem.clone(), policy());
        assert_eq!(gw.authorize(&req()).await, Ok("ref2".into()));
        let stubborn = Arc::new(Flaky { fail_first: 10, idempotent: true, ..Flaky::default() });
        let (gw, _t) = PaymentGateway::start(stubborn.clone(), policy());
        assert!(gw.authorize(&req()).await.is_err());
        assert_eq!(stubborn.authorizations.load(Ordering::SeqCst), 3, "bounded");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_void_is_retried_then_recorded_and_swept() {
        let p = Arc::new(Flaky { fail_first: 2, ..Flaky::default() });
        let (gw, _t) = PaymentGateway::start(p.clone(), policy());
        gw.void(OrderId::new(), "ref").await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(p.voids.load(Ordering::SeqCst), 3, "retried until it succeeded");
        assert!(gw.unvoided().is_empty());

        let p = Arc::new(Flaky { fail_first: 5, ..Flaky::default() });
        let (gw, _t) = PaymentGateway::start(p.clone(), policy());
        let order = OrderId::new();
        gw.void(order, "ref").await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        let recorded = gw.unvoided();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].order_id, order.to_string());
        assert_eq!(recorded[0].reference.as_deref(), Some("ref"));
        assert_eq!(recorded[0].attempts, 5);
        gw.sweep().await;
        assert!(gw.unvoided().is_empty(), "the sixth void succeeded");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_authorization_is_recorded_without_a_reference() {
        let p: Arc<dyn Payments> = Arc::new(Flaky { hang: true, ..Flaky::default() });
        let breaker = crate::breaker::Breaker::new("payments-test", crate::breaker::BreakerConfig::default());
        let guarded = Arc::new(crate::breaker::GuardedPayments::new(p, breaker, Duration::from_millis(200)));
        let (gw, _t) = PaymentGateway::start(guarded, policy());
        let r = req();
        assert!(matches!(gw.authorize(&r).await, Err(PaymentError::TimedOut(_))));
        let recorded = gw.unvoided();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].order_id, r.order_id.to_string());
        assert_eq!(recorded[0].reference, None);
        gw.sweep().await;
        assert_eq!(gw.unvoided().len(), 1, "nothing to void by reference: it stays for an operator");
    }
}
