//! Verification keys: parsed from JWKS documents, PEM files or an HMAC secret, and the remote
//! JWKS that refreshes itself.
//!
//! A remote key set is refreshed periodically (`bearer.jwks_refresh_interval`) and on demand
//! when a token names a `kid` the set lacks. On-demand refetches are single-flight (concurrent
//! callers wait for the one fetch) and rate-limited (`bearer.unknown_kid_min_interval`), so a
//! flood of random kids cannot make the gateway hammer the provider. A failed fetch keeps the
//! last good keys.

use crate::http_client::send_to_idp;
use crate::metrics::METRICS;
use crate::oidc::provider::Provider;
use arc_swap::ArcSwap;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One key a token may be verified with.
#[derive(Clone)]
pub struct VerifyKey {
    pub kid: Option<String>,
    /// The `alg` the key is restricted to, when its JWK says so.
    pub alg: Option<Algorithm>,
    pub family: AlgorithmFamily,
    pub key: DecodingKey,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key material stays out of logs, even public keys (HMAC keys are secrets).
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.family)
            .finish()
    }
}

impl VerifyKey {
    /// Whether this key may verify a token with `kid` and `alg`: the key type must match the
    /// algorithm family (no HS256 with an RSA public key), and a JWK's own `alg` must agree.
    fn accepts(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        let kid_ok = match (kid, &self.kid) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => true,
            (None, _) => true,
        };
        kid_ok && self.family == alg.family() && self.alg.is_none_or(|a| a == alg)
    }

    /// A key from a PEM public key (RSA, EC or Ed25519).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        type PemParser = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;
        let attempts: [(AlgorithmFamily, PemParser); 3] = [
            (AlgorithmFamily::Rsa, DecodingKey::from_rsa_pem),
            (AlgorithmFamily::Ec, DecodingKey::from_ec_pem),
            (AlgorithmFamily::Ed, DecodingKey::from_ed_pem),
        ];
        for (family, parse) in attempts {
            if let Ok(key) = parse(pem) {
                return Ok(Self {
                    kid: None,
                    alg: None,
                    family,
                    key,
                });
            }
        }
        Err("not a PEM RSA, EC or Ed25519 public key".into())
    }

    /// An HMAC key from a shared secret.
    pub fn hmac(secret: &[u8]) -> Self {
        Self {
            kid: None,
            alg: None,
            family: AlgorithmFamily::Hmac,
            key: DecodingKey::from_secret(secret),
        }
    }
}

/// A set of keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<VerifyKey>,
}

impl KeySet {
    /// Parse a JWKS document. Keys for encryption (`use: enc`), symmetric keys and key types
    /// jsonwebtoken does not support are skipped rather than failing the whole set: one odd key
    /// at the provider must not stop verification with the others.
    pub fn from_jwks(json: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(json).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Vec::new();
        for value in doc.keys {
            if value.get("use").and_then(|u| u.as_str()) == Some("enc") {
                continue;
            }
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if let Some(key) = Self::from_jwk(&jwk) {
                keys.push(key);
            }
        }
        Ok(Self { keys })
    }

    fn from_jwk(jwk: &Jwk) -> Option<VerifyKey> {
        use jsonwebtoken::jwk::AlgorithmParameters as P;
        let family = match &jwk.algorithm {
            P::RSA(_) => AlgorithmFamily::Rsa,
            P::EllipticCurve(_) => AlgorithmFamily::Ec,
            P::OctetKeyPair(_) => AlgorithmFamily::Ed,
            // Symmetric keys are configured as secrets, never taken from a published JWKS.
            _ => return None,
        };
        // A key published for something else (`"alg": "RSA-OAEP"`, or a value jsonwebtoken does
        // not know) is no signing key: skipped, never left unrestricted.
        let alg = match jwk.common.key_algorithm {
            Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
            None => None,
        };
        Some(VerifyKey {
            kid: jwk.common.key_id.clone(),
            alg,
            family,
            key: DecodingKey::from_jwk(jwk).ok()?,
        })
    }

    /// Keys that may verify a token with `kid` and `alg`.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&VerifyKey> {
        self.keys.iter().filter(|k| k.accepts(kid, alg)).collect()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// Where a remote JWKS is found.
pub enum JwksLocation {
    /// A configured `jwks_uri`.
    Fixed(String),
    /// The `jwks_uri` of the `[oidc]` provider's discovery document.
    Discovery(Arc<Provider>),
}

/// A JWKS fetched over HTTP and kept fresh.
pub struct RemoteJwks {
    location: JwksLocation,
    http: reqwest::Client,
    keys: ArcSwap<KeySet>,
    /// When the last on-demand refetch started; the lock makes refetches single-flight.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
    min_refetch_interval: Duration,
    fetches: AtomicU64,
}

impl RemoteJwks {
    pub fn new(
        location: JwksLocation,
        http: reqwest::Client,
        min_refetch_interval: Duration,
    ) -> Self {
        Self {
            location,
            http,
            keys: ArcSwap::from_pointee(KeySet::default()),
            last_refetch: tokio::sync::Mutex::new(None),
            min_refetch_interval,
            fetches: AtomicU64::new(0),
        }
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// How many fetches were made (periodic and on demand).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The JWKS URL; `None` while the provider's discovery document is not loaded.
    fn url(&self) -> Option<String> {
        match &self.location {
            JwksLocation::Fixed(url) => Some(url.clone()),
            JwksLocation::Discovery(provider) => provider
                .snapshot()
                .map(|s| s.metadata.jwks_uri().url().to_string()),
        }
    }

    /// Fetch the set now; on failure the previous keys stay. Returns the number of keys, or
    /// `Ok(None)` when the provider's discovery (which names the URL) is not loaded yet.
    pub async fn refresh(&self) -> Result<Option<usize>, String> {
        let Some(url) = self.url() else {
            return Ok(None);
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch(&url).await;
        let label = if result.is_ok() { "ok" } else { "failed" };
        METRICS.jwks_refresh.with_label_values(&[label]).inc();
        let set = result?;
        let n = set.keys.len();
        self.keys.store(Arc::new(set));
        Ok(Some(n))
    }

    async fn fetch(&self, url: &str) -> Result<KeySet, String> {
        let req = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json");
        let resp = send_to_idp("jwks", req)
            .await
            .map_err(|e| format!("cannot fetch {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered HTTP {}", resp.status().as_u16()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading {url}: {e}"))?;
        let set = KeySet::from_jwks(&body).map_err(|e| format!("{url}: {e}"))?;
        if set.keys.is_empty() {
            // An empty or all-garbage answer would refuse every token: a failed refresh, so the
            // previous keys stay.
            return Err(format!("{url} has no usable signing key"));
        }
        Ok(set)
    }

    /// A token names `kid`, unknown here: refetch unless another caller just did or the rate
    /// limit forbids. Returns whether the set now has the kid.
    pub async fn refetch_for(&self, kid: &str) -> bool {
        let mut last = self.last_refetch.lock().await;
        if self.keys.load().has_kid(kid) {
            return true; // fetched by the caller we waited for
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refetch_interval) {
            return false;
        }
        *last = Some(Instant::now());
        match self.refresh().await {
            Ok(Some(n)) => tracing::info!(keys = n, "JWKS refetched for an unknown kid"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "JWKS refetch failed; keeping the previous keys"),
        }
        self.keys.load().has_kid(kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &str = r#"{"keys":[
        {"kty":"RSA","kid":"r1","alg":"RS256","use":"sig","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
        {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
        {"kty":"oct","kid":"sym","k":"c2VjcmV0"},
        {"kty":"XYZ","kid":"weird"}
    ]}"#;

    #[test]
    fn jwks_keeps_signing_keys_and_skips_the_rest() {
        let set = KeySet::from_jwks(JWKS.as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.candidates(Some("r1"), Algorithm::RS256).len(), 1);
        assert!(
            set.candidates(Some("r1"), Algorithm::PS256).is_empty(),
            "JWK alg pins RS256"
        );
        assert!(
            set.candidates(Some("r1"), Algorithm::HS256).is_empty(),
            "no HS with RSA keys"
        );
        assert!(set.candidates(Some("nope"), Algorithm::RS256).is_empty());
        assert!(KeySet::from_jwks(b"garbage").is_err());
        assert!(KeySet::from_jwks(b"{\"keys\":{}}").is_err());
        // A key published for encryption by its `alg` alone (no `use`) is no signing key, and
        // never a key for any RS/PS algorithm.
        let oaep = JWKS.replace(r#""alg":"RS256","use":"sig","#, r#""alg":"RSA-OAEP","#);
        assert!(KeySet::from_jwks(oaep.as_bytes()).unwrap().keys.is_empty());
    }

    /// Answers every connection with `body` (a JWKS endpoint gone wrong), on loopback.
    fn serve(body: &'static str) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.read(&mut [0; 4096]);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    #[tokio::test]
    async fn a_jwks_without_usable_keys_keeps_the_previous_ones() {
        let good = RemoteJwks::new(
            JwksLocation::Fixed(serve(JWKS)),
            reqwest::Client::new(),
            Duration::ZERO,
        );
        assert_eq!(good.refresh().await, Ok(Some(1)));
        for broken in [
            r#"{"keys":[]}"#,
            r#"{"keys":[{"kty":"XYZ"},{"kty":"oct","k":"AA"}]}"#,
        ] {
            let jwks = RemoteJwks::new(
                JwksLocation::Fixed(serve(broken)),
                reqwest::Client::new(),
                Duration::ZERO,
            );
            jwks.keys.store(good.keys());
            let err = jwks.refresh().await.unwrap_err();
            assert!(err.contains("no usable signing key"), "{err}");
            assert!(jwks.keys().has_kid("r1"), "the previous keys stay");
        }
    }

    #[test]
    fn key_debug_hides_material() {
        let k = VerifyKey::hmac(b"topsecret");
        assert!(!format!("{k:?}").contains("topsecret"));
    }
}
