//! The built-in `test` payment provider: honest, deterministic, documented.
//!
//! | token | outcome |
//! |---|---|
//! | `tok_decline` | declined (HTTP 402 `payment-declined`) |
//! | `tok_error` | provider failure (HTTP 502 `payment-provider-error`) |
//! | `tok_slow` | approved after [`SLOW_AUTHORIZATION`] (an issuer taking its time) |
//! | any other `tok_…` | approved, reference `pay_test_<uuid>` |
//! | anything else | rejected as unknown (HTTP 422 `invalid-payment-token`) |
//!
//! It moves no money and says so in every reference it returns.

use async_trait::async_trait;

use crate::ports::{PaymentError, PaymentRequest, Payments};

/// How long `tok_slow` takes to be approved.
pub const SLOW_AUTHORIZATION: std::time::Duration = std::time::Duration::from_secs(2);

/// The test provider. See the module docs for its tokens.
#[derive(Debug, Default, Clone)]
pub struct TestPayments;

#[async_trait]
impl Payments for TestPayments {
    async fn authorize(&self, req: &PaymentRequest) -> Result<String, PaymentError> {
        authorize(&req.token).await
    }

    async fn void(&self, _reference: &str) -> Result<(), PaymentError> {
        Ok(())
    }
}

/// The provider's rules, outside the `#[async_trait]` method: line coverage does
/// not see into the body of one (README, Coverage).
async fn authorize(token: &str) -> Result<String, PaymentError> {
    match token {
        "tok_decline" => Err(PaymentError::Declined),
        "tok_error" => Err(PaymentError::Provider("test provider: tok_error always fails".into())),
        "tok_slow" => {
            tokio::time::sleep(SLOW_AUTHORIZATION).await;
            Ok(format!("pay_test_{}", uuid::Uuid::new_v4().simple()))
        }
        t if t.starts_with("tok_") && t.len() <= 128 => Ok(format!("pay_test_{}", uuid::Uuid::new_v4().simple())),
        _ => Err(PaymentError::InvalidToken),
    }
}

#[cfg(test)]
mod tests {
    use flashcore_domain::{Currency, Money, OrderId};

    use super::*;

    fn req(token: &str) -> PaymentRequest {
        PaymentRequest { order_id: OrderId::new(), amount: Money::zero(Currency::EUR), token: token.into() }
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_behave_as_documented() {
        let p = TestPayments;
        assert_eq!(p.authorize(&req("tok_decline")).await, Err(PaymentError::Declined));
        assert!(matches!(p.authorize(&req("tok_error")).await, Err(PaymentError::Provider(_))));
        assert!(p.authorize(&req("tok_visa")).await.is_ok_and(|r| r.starts_with("pay_test_")));
        let started = tokio::time::Instant::now();
        assert!(p.authorize(&req("tok_slow")).await.is_ok());
        assert!(started.elapsed() >= SLOW_AUTHORIZATION);
        assert_eq!(p.authorize(&req("card_4242")).await, Err(PaymentError::InvalidToken));
        let overlong = format!("tok_{}", "x".repeat(125));
        assert_eq!(p.authorize(&req(&overlong)).await, Err(PaymentError::InvalidToken));
    }
}
