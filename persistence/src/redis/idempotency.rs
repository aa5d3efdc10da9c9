//! Idempotency keys in Redis: a claim is one native `SET key entry NX PX ttl
//! GET`; completing and releasing are Lua scripts that find the owner's running
//! entry by its JSON prefix ([`Entry::running_prefix`]) without decoding it.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use flashcore_http_ports::idempotency::Entry;
use flashcore_http_ports::{IdempotencyClaim, IdempotencyStore, StoreError, StoredResponse};
use redis::Script;

use super::{Redis, count_error, millis};

/// `complete`: KEYS[1] the key; ARGV: the owner's running-entry prefix (see
/// [`Entry::running_prefix`]), the response (JSON), ttl (ms). Replaces the owner's
/// running entry by `{state: done, fingerprint, response}`; 1 if it did. Plain
/// string operations, no JSON decoding: the prefix identifies the owner's entry,
/// and the rest of it is the fingerprint, already JSON; the response is spliced
/// in as sent.
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
local done = '{"state":"done","fingerprint":' .. string.sub(cur, #ARGV[1] + 1, -2) .. ',"response":' .. ARGV[2] .. '}'
redis.call('SET', KEYS[1], done, 'PX', ARGV[3])
return 1
"#,
    )
});

/// `release`: KEYS[1] the key; ARGV[1] the owner's running-entry prefix. Deletes
/// the owner's running entry; 1 if it did.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

#[async_trait]
impl IdempotencyStore for Redis {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        owner: &str,
        lock_ttl: Duration,
    ) -> Result<IdempotencyClaim, StoreError> {
        let entry = Entry::Running { owner: owner.to_owned(), fingerprint: fingerprint.to_owned() };
        let entry = serde_json::to_string(&entry)
            .map_err(|e| StoreError::Unavailable(format!("encoding idempotency entry: {e}")))?;
        let key = self.key("idem", key);
        // One native command, no script: sets the running entry if the key is
        // free and answers nothing, or leaves it and answers the stored entry.
        let stored: Option<String> = self
            .run("idem_claim", |mut con| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(entry)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(lock_ttl))
                    .arg("GET")
                    .query_async(&mut con)
                    .await
            })
            .await?;
        let Some(stored) = stored else { return Ok(IdempotencyClaim::Acquired) };
        match serde_json::from_str::<Entry>(&stored) {
            Ok(found) => Ok(found.answer(fingerprint)),
            Err(e) => {
                count_error("idem_decode");
                Err(StoreError::Unavailable(format!("undecodable idempotency entry: {e}")))
            }
        }
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let response = serde_json::to_string(response)
            .map_err(|e| StoreError::Unavailable(format!("encoding stored response: {e}")))?;
        let key = self.key("idem", key);
        let owner = Entry::running_prefix(owner);
        self.run("idem_complete", |mut con| async move {
            COMPLETE.key(key).arg(owner).arg(response).arg(millis(ttl)).invoke_async::<i64>(&mut con).await
        })
        .await
        .map(drop)
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let key = self.key("idem", key);
        let owner = Entry::running_prefix(owner);
        self.run(
            "idem_release",
            |mut con| async move { RELEASE.key(key).arg(owner).invoke_async::<i64>(&mut con).await },
        )
        .await
        .map(drop)
    }
}
