//! The in-process session store: two moka caches, one for sessions and one for pending logins.
//!
//! Sessions expire after the idle timeout without use, and never later than their absolute
//! `expires_at` (a per-entry [`Expiry`]); capacity is bounded (`session.max_sessions`), the
//! least-recently-used going first. Pending logins live for `session.login_timeout` and are
//! capped too, so a flood of unauthenticated requests cannot grow memory without bound.

use super::{unix_now, PendingLogin, Session, SessionKey, SessionStore, StoreError};
use async_trait::async_trait;
use moka::sync::Cache;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pending logins kept at most, whatever the load.
const MAX_PENDING_LOGINS: u64 = 100_000;

/// Idle timeout, capped by what is left of the absolute lifetime.
struct SessionExpiry {
    idle: Duration,
}

impl SessionExpiry {
    fn next(&self, session: &Session) -> Duration {
        let left = Duration::from_secs(session.expires_at.saturating_sub(unix_now()));
        self.idle.min(left)
    }
}

impl Expiry<SessionKey, Arc<Session>> for SessionExpiry {
    fn expire_after_create(
        &self,
        _key: &SessionKey,
        value: &Arc<Session>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.next(value))
    }

    fn expire_after_read(
        &self,
        _key: &SessionKey,
        value: &Arc<Session>,
        _read_at: Instant,
        _duration_until_expiry: Option<Duration>,
        _last_modified_at: Instant,
    ) -> Option<Duration> {
        Some(self.next(value))
    }

    fn expire_after_update(
        &self,
        _key: &SessionKey,
        value: &Arc<Session>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.next(value))
    }
}

/// Sessions and pending logins in this process.
pub struct MemoryStore {
    sessions: Cache<SessionKey, Arc<Session>>,
    pending: Cache<String, PendingLogin>,
}

impl MemoryStore {
    pub fn new(max_sessions: u64, idle_timeout: Duration, login_timeout: Duration) -> Self {
        Self {
            sessions: Cache::builder()
                .max_capacity(max_sessions)
                .expire_after(SessionExpiry { idle: idle_timeout })
                .build(),
            pending: Cache::builder()
                .max_capacity(MAX_PENDING_LOGINS)
                .time_to_live(login_timeout)
                .build(),
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert(&self, session: Arc<Session>) -> Result<(), StoreError> {
        self.sessions.insert(session.key, session);
        Ok(())
    }

    async fn get(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.sessions.get(key).filter(|s| !s.is_expired(unix_now())))
    }

    async fn remove(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.sessions.remove(key))
    }

    async fn put_pending(&self, state: &str, login: PendingLogin) -> Result<(), StoreError> {
        self.pending.insert(state.to_string(), login);
        Ok(())
    }

    async fn take_pending(&self, state: &str) -> Result<Option<PendingLogin>, StoreError> {
        Ok(self.pending.remove(state))
    }

    fn session_count(&self) -> u64 {
        self.sessions.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::secret::Secret;
    use crate::session::{SessionId, SessionTokens};

    fn session(lifetime_secs: u64) -> Arc<Session> {
        let now = unix_now();
        Arc::new(Session {
            key: SessionId::generate().key(),
            identity: Arc::new(Identity {
                subject: "alice".into(),
                claims: Default::default(),
            }),
            tokens: SessionTokens {
                access_token: Secret::new("at"),
                access_token_expires_at: None,
                refresh_token: None,
                id_token: Secret::new("id"),
            },
            sid: None,
            created_at: now,
            expires_at: now + lifetime_secs,
        })
    }

    #[tokio::test]
    async fn sessions_expire_when_idle_and_at_their_absolute_end() {
        let store = MemoryStore::new(10, Duration::from_millis(300), Duration::from_secs(60));
        let idle = session(3600);
        store.insert(idle.clone()).await.unwrap();
        assert!(store.get(&idle.key).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(store.get(&idle.key).await.unwrap().is_none(), "idle expiry");

        let store = MemoryStore::new(10, Duration::from_secs(3600), Duration::from_secs(60));
        let dead = session(0);
        store.insert(dead.clone()).await.unwrap();
        assert!(
            store.get(&dead.key).await.unwrap().is_none(),
            "absolute expiry"
        );
    }

    #[tokio::test]
    async fn pending_logins_are_single_use() {
        let store = MemoryStore::new(10, Duration::from_secs(60), Duration::from_secs(60));
        let login = PendingLogin {
            nonce: Secret::new("n"),
            pkce_verifier: Secret::new("v"),
            return_to: "/".into(),
        };
        store.put_pending("s1", login).await.unwrap();
        assert!(store.take_pending("s1").await.unwrap().is_some());
        assert!(store.take_pending("s1").await.unwrap().is_none());
    }
}
