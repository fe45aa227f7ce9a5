//! The in-process session store: a moka cache of sessions.
//!
//! Sessions expire after the idle timeout without use (moka's `time_to_idle`), and never later
//! than their absolute `expires_at` (a per-entry [`Expiry`]); capacity is bounded
//! (`session.max_sessions`), the least-recently-used going first. Only a completed login adds a
//! session; pending logins are the browser's to keep ([`super::pending_login`]).
//!
//! Sessions are indexed by provider session id (`sid`), subject and token hash so back-channel,
//! front-channel and API logout find them; moka's eviction listener keeps the index in step and
//! reports expiries and evictions to the [`SessionEndListener`].

use super::{
    unix_now, EndReason, Session, SessionEndListener, SessionKey, SessionStore, StoreError,
    TokenHash,
};
use async_trait::async_trait;
use hashbrown::HashTable;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The absolute end of a session: what is left of its lifetime, set when it is stored.
///
/// The idle timeout is moka's own `time_to_idle`, not this per-entry expiry: a read then only
/// stamps the entry's access time. An `expire_after_read` would read the wall clock and move
/// the entry in moka's timer wheel on every request (BENCHMARKS.md).
struct UntilSessionEnd;

impl UntilSessionEnd {
    fn left(session: &Session) -> Duration {
        Duration::from_secs(session.expires_at.saturating_sub(unix_now()))
    }
}

impl Expiry<SessionKey, Arc<Session>> for UntilSessionEnd {
    fn expire_after_create(
        &self,
        _key: &SessionKey,
        value: &Arc<Session>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Self::left(value))
    }

    fn expire_after_update(
        &self,
        _key: &SessionKey,
        value: &Arc<Session>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(Self::left(value))
    }
}

/// A name a session can be found by, for logout.
#[derive(Hash)]
enum IndexName<'a> {
    /// The provider's session id (`sid`): back-channel and front-channel logout.
    Sid(&'a str),
    /// The subject: back-channel logout without `sid`, the admin listener.
    Subject(&'a str),
    /// The hash of the access token: the logout API.
    Token(TokenHash),
}

impl<'a> IndexName<'a> {
    /// Every name `session` can be found by.
    fn of(session: &'a Session) -> impl Iterator<Item = IndexName<'a>> {
        let sid = session.identity.sid.as_deref().map(IndexName::Sid);
        let subject = IndexName::Subject(&session.identity.subject);
        let token = IndexName::Token(session.access_token_hash());
        sid.into_iter().chain([subject, token])
    }

    fn names(&self, session: &Session) -> bool {
        match self {
            IndexName::Sid(sid) => session.identity.sid.as_deref() == Some(*sid),
            IndexName::Subject(sub) => &*session.identity.subject == *sub,
            IndexName::Token(hash) => session.access_token_hash() == *hash,
        }
    }
}

/// One (name, session) pair of the index: 16 bytes.
struct IndexEntry {
    /// The keyed hash of the [`IndexName`].
    hash: u64,
    session: Weak<Session>,
}

/// Sessions by provider session id, subject and token hash, for logout.
///
/// One table holds every (name, session) pair as a hash and a weak reference, several entries
/// per name when a user has several sessions: 3 entries of 16 bytes per session, where maps
/// of strings to key lists cost some 500 (a million sessions must fit in memory,
/// BENCHMARKS.md). Hashes are keyed per process, and may collide: a lookup checks each candidate
/// session's names. Kept in step with the cache by the eviction listener, whatever removed an
/// entry.
struct SessionIndex {
    entries: HashTable<IndexEntry>,
    hasher: RandomState,
}

impl SessionIndex {
    fn new() -> Self {
        Self {
            entries: HashTable::new(),
            hasher: RandomState::new(),
        }
    }

    fn add(&mut self, session: &Arc<Session>) {
        for name in IndexName::of(session) {
            let hash = self.hasher.hash_one(name);
            let entry = IndexEntry {
                hash,
                session: Arc::downgrade(session),
            };
            self.entries.insert_unique(hash, entry, |e| e.hash);
        }
    }

    fn remove(&mut self, session: &Arc<Session>) {
        for name in IndexName::of(session) {
            let hash = self.hasher.hash_one(name);
            let this = |e: &IndexEntry| std::ptr::eq(e.session.as_ptr(), Arc::as_ptr(session));
            if let Ok(entry) = self.entries.find_entry(hash, this) {
                entry.remove();
            }
        }
    }

    /// The keys of the sessions `name` names.
    fn find(&self, name: IndexName<'_>) -> Vec<SessionKey> {
        let hash = self.hasher.hash_one(&name);
        self.entries
            .iter_hash(hash)
            .filter(|e| e.hash == hash)
            .filter_map(|e| e.session.upgrade())
            .filter(|s| name.names(s))
            .map(|s| s.key)
            .collect()
    }
}

/// Sessions in this process.
pub struct MemoryStore {
    sessions: Cache<SessionKey, Arc<Session>>,
    index: Arc<Mutex<SessionIndex>>,
    listener: Arc<dyn SessionEndListener>,
}

impl MemoryStore {
    pub fn new(
        max_sessions: u64,
        idle_timeout: Duration,
        listener: Arc<dyn SessionEndListener>,
    ) -> Self {
        let index = Arc::new(Mutex::new(SessionIndex::new()));
        let on_removal = {
            let index = index.clone();
            let listener = listener.clone();
            move |_key: Arc<SessionKey>, session: Arc<Session>, cause: RemovalCause| {
                lock(&index).remove(&session);
                // Explicit removals are reported by the method that made them, with its reason.
                let reason = match cause {
                    RemovalCause::Expired => EndReason::Expired,
                    RemovalCause::Size => EndReason::Evicted,
                    RemovalCause::Explicit | RemovalCause::Replaced => return,
                };
                listener.session_ended(&session, reason);
            }
        };
        Self {
            sessions: Cache::builder()
                .max_capacity(max_sessions)
                .time_to_idle(idle_timeout)
                .expire_after(UntilSessionEnd)
                .eviction_listener(on_removal)
                .build(),
            index,
            listener,
        }
    }

    fn remove_keys(&self, keys: Vec<SessionKey>, reason: EndReason) -> Vec<Arc<Session>> {
        keys.into_iter()
            .filter_map(|k| self.sessions.remove(&k))
            .inspect(|s| self.listener.session_ended(s, reason))
            .collect()
    }
}

/// The index lock; a panic elsewhere while holding it leaves a usable index (plain maps).
fn lock(index: &Mutex<SessionIndex>) -> std::sync::MutexGuard<'_, SessionIndex> {
    index.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert(&self, session: Arc<Session>) -> Result<(), StoreError> {
        lock(&self.index).add(&session);
        self.sessions.insert(session.key, session);
        Ok(())
    }

    async fn get(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.sessions.get(key).filter(|s| !s.is_expired(unix_now())))
    }

    async fn remove(
        &self,
        key: &SessionKey,
        reason: EndReason,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.remove_keys(vec![*key], reason).pop())
    }

    async fn remove_by_sid(
        &self,
        sid: &str,
        reason: EndReason,
    ) -> Result<Vec<Arc<Session>>, StoreError> {
        let keys = lock(&self.index).find(IndexName::Sid(sid));
        Ok(self.remove_keys(keys, reason))
    }

    async fn remove_by_subject(
        &self,
        sub: &str,
        reason: EndReason,
    ) -> Result<Vec<Arc<Session>>, StoreError> {
        let keys = lock(&self.index).find(IndexName::Subject(sub));
        Ok(self.remove_keys(keys, reason))
    }

    async fn find_by_token(&self, token: &TokenHash) -> Result<Option<Arc<Session>>, StoreError> {
        let keys = lock(&self.index).find(IndexName::Token(*token));
        Ok(keys.first().and_then(|k| self.sessions.get(k)))
    }

    fn session_count(&self) -> u64 {
        self.sessions.entry_count()
    }

    fn run_maintenance(&self) {
        self.sessions.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::secret::Secret;
    use crate::session::{hash_token, SessionId, SessionTokens};
    use std::sync::Mutex as StdMutex;

    /// Records every reported end.
    #[derive(Default)]
    struct Recorder(StdMutex<Vec<(String, EndReason)>>);

    impl SessionEndListener for Recorder {
        fn session_ended(&self, session: &Session, reason: EndReason) {
            self.0
                .lock()
                .unwrap()
                .push((session.identity.subject.to_string(), reason));
        }
    }

    fn new_store(idle: Duration) -> (MemoryStore, Arc<Recorder>) {
        let rec = Arc::new(Recorder::default());
        (MemoryStore::new(10, idle, rec.clone()), rec)
    }

    fn session(lifetime_secs: u64) -> Arc<Session> {
        session_of("alice", None, lifetime_secs)
    }

    fn session_of(subject: &str, sid: Option<&str>, lifetime_secs: u64) -> Arc<Session> {
        let now = unix_now();
        let claims = serde_json::json!({ "sid": sid });
        Arc::new(Session {
            key: SessionId::generate().key(),
            identity: Arc::new(Identity::new(subject, claims.as_object().unwrap())),
            tokens: SessionTokens {
                access_token: Secret::new(format!("at-{}", crate::session::random_token())),
                refresh_token: Some(Secret::new(format!(
                    "rt-{}",
                    crate::session::random_token()
                ))),
                id_token: Some(Secret::new("id")),
            },
            expires_at: now + lifetime_secs,
        })
    }

    #[tokio::test]
    async fn sessions_expire_when_idle_and_at_their_absolute_end() {
        let (store, ended) = new_store(Duration::from_millis(300));
        let idle = session(3600);
        store.insert(idle.clone()).await.unwrap();
        assert!(store.get(&idle.key).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(store.get(&idle.key).await.unwrap().is_none(), "idle expiry");
        // moka's timer wheel has about one-second granularity: keep sweeping, as the
        // background sweeper does.
        for _ in 0..40 {
            store.run_maintenance();
            if !ended.0.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            *ended.0.lock().unwrap(),
            [("alice".to_string(), EndReason::Expired)]
        );
        let by_token = store
            .find_by_token(&idle.access_token_hash())
            .await
            .unwrap();
        assert!(by_token.is_none(), "the index forgets expired sessions");

        let (store, _) = new_store(Duration::from_secs(3600));
        let dead = session(0);
        store.insert(dead.clone()).await.unwrap();
        assert!(
            store.get(&dead.key).await.unwrap().is_none(),
            "absolute expiry"
        );
    }

    #[tokio::test]
    async fn sessions_are_found_and_ended_by_sid_subject_and_token() {
        let (store, ended) = new_store(Duration::from_secs(60));
        let a1 = session_of("alice", Some("sid-1"), 3600);
        let a2 = session_of("alice", Some("sid-2"), 3600);
        let b = session_of("bob", Some("sid-1b"), 3600);
        for s in [&a1, &a2, &b] {
            store.insert(s.clone()).await.unwrap();
        }
        let found = store
            .find_by_token(&a2.access_token_hash())
            .await
            .unwrap()
            .unwrap();
        assert!(found.key == a2.key, "found by access token");
        let refresh = hash_token(a2.tokens.refresh_token.as_ref().unwrap().expose());
        assert!(store.find_by_token(&refresh).await.unwrap().is_none());
        let gone = store
            .remove_by_sid("sid-1", EndReason::Backchannel)
            .await
            .unwrap();
        assert_eq!(gone.len(), 1);
        assert!(store.get(&a1.key).await.unwrap().is_none());
        let gone = store
            .remove_by_subject("alice", EndReason::Admin)
            .await
            .unwrap();
        assert_eq!(gone.len(), 1, "only a2 was left");
        assert!(store.get(&b.key).await.unwrap().is_some());
        assert!(store
            .remove_by_sid("nope", EndReason::Backchannel)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            *ended.0.lock().unwrap(),
            [
                ("alice".to_string(), EndReason::Backchannel),
                ("alice".to_string(), EndReason::Admin)
            ]
        );
    }
}
