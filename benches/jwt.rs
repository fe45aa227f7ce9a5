//! Bearer-token verification: the gateway's full verify next to its floor, and the cached hit.
//!
//! For each algorithm, in one criterion group so the ratio shows:
//! - `raw_signature`: jsonwebtoken's signature check alone (aws-lc-rs backend) on the token's
//!   signing input: the floor no verifier can beat;
//! - `full_verify`: the gateway's uncached path (`Bearer::verify_jwt`: header checks, issuer
//!   selection, signature, claims) on the same token;
//! - `cached_hit`: `Bearer::verify` on a token already verified (hash + cache lookup).
//!
//! And `token_hash`: the cache key of the RS256 token, SHA-256 as the gateway computes it
//! (`sha2`, which uses the CPU's SHA extensions when it has them), next to the two other
//! cryptographic hashes at hand: aws-lc-rs's SHA-256 (the crypto backend's assembly) and BLAKE3,
//! keyed. The bearer-token issue asks for a cryptographic hash of the whole token, so the hit
//! path can be no cheaper than the fastest of these.
//!
//! Run: `cargo bench --bench jwt` (results in BENCHMARKS.md).

use authgate::config::Config;
use authgate::jwt::Bearer;
use authgate::oidc::provider::Provider;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use jsonwebtoken::{encode, Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;

struct Case {
    alg: Algorithm,
    issuer: &'static str,
    token: String,
    verify_key: DecodingKey,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const HMAC_SECRET: &str = "a-benchmark-hmac-secret-of-32-bytes-or-more";

fn cases(dir: &std::path::Path) -> (Vec<Case>, String) {
    let mut cases = Vec::new();
    let mut toml = String::new();
    let claims = |iss: &str| {
        json!({"iss": iss, "sub": "bench-user", "aud": "api", "iat": now(),
               "exp": now() + 86_400, "email": "bench@example.test", "scope": "read write",
               "groups": ["a", "b"]})
    };
    for (alg, issuer, rc) in [
        (
            Algorithm::RS256,
            "https://rs256.bench",
            Some(&rcgen::PKCS_RSA_SHA256),
        ),
        (
            Algorithm::PS256,
            "https://ps256.bench",
            Some(&rcgen::PKCS_RSA_SHA256),
        ),
        (
            Algorithm::ES256,
            "https://es256.bench",
            Some(&rcgen::PKCS_ECDSA_P256_SHA256),
        ),
        (
            Algorithm::EdDSA,
            "https://eddsa.bench",
            Some(&rcgen::PKCS_ED25519),
        ),
        (Algorithm::HS256, "https://hs256.bench", None),
    ] {
        let (signing, verify_key, source) = match rc {
            Some(rc) => {
                let pair = rcgen::KeyPair::generate_for(rc).unwrap();
                let private = pair.serialize_pem();
                let public = pair.public_key_pem();
                let (signing, verify) = match alg {
                    Algorithm::RS256 | Algorithm::PS256 => (
                        EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
                        DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
                    ),
                    Algorithm::ES256 => (
                        EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
                        DecodingKey::from_ec_pem(public.as_bytes()).unwrap(),
                    ),
                    _ => (
                        EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
                        DecodingKey::from_ed_pem(public.as_bytes()).unwrap(),
                    ),
                };
                let path = dir.join(format!("{alg:?}.pem"));
                std::fs::write(&path, public).unwrap();
                (
                    signing,
                    verify,
                    format!(
                        "pem_files = [\"{}\"]\nalgorithms = [\"{alg:?}\"]",
                        path.display()
                    ),
                )
            }
            None => (
                EncodingKey::from_secret(HMAC_SECRET.as_bytes()),
                DecodingKey::from_secret(HMAC_SECRET.as_bytes()),
                format!("hmac_secret = \"{HMAC_SECRET}\"\nhmac_algorithm = \"HS256\""),
            ),
        };
        toml.push_str(&format!(
            "\n[[bearer.issuers]]\nissuer = \"{issuer}\"\naudiences = [\"api\"]\n{source}\n"
        ));
        let token = encode(&Header::new(alg), &claims(issuer), &signing).unwrap();
        cases.push(Case {
            alg,
            issuer,
            token,
            verify_key,
        });
    }
    (cases, toml)
}

fn bench_verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (cases, issuers) = cases(dir.path());
    let toml = format!(
        r#"
[upstream]
url = "http://127.0.0.1:3000"
[oidc]
issuer = "http://127.0.0.1:9000"
client_id = "bench"
client_secret = "bench-secret"
redirect_url = "http://127.0.0.1:8080/oauth2/callback"
[bearer]
trust_oidc_issuer = false
{issuers}
"#
    );
    let config = Config::from_toml(&toml).unwrap_or_else(|e| panic!("{e:?}"));
    let http = reqwest::Client::new();
    let provider = Arc::new(Provider::new(config.oidc.clone(), http.clone()));
    let bearer = Bearer::new(&config.bearer, &config.oidc, provider, http);

    for case in &cases {
        let mut group = c.benchmark_group(format!("{:?}", case.alg));
        let (message, signature) = case.token.rsplit_once('.').unwrap();
        group.bench_function(BenchmarkId::new("raw_signature", case.issuer), |b| {
            b.iter(|| {
                assert!(jsonwebtoken::crypto::verify(
                    black_box(signature),
                    black_box(message.as_bytes()),
                    &case.verify_key,
                    case.alg
                )
                .unwrap())
            })
        });
        group.bench_function(BenchmarkId::new("full_verify", case.issuer), |b| {
            b.iter(|| {
                let v = futures::executor::block_on(bearer.verify_jwt(black_box(&case.token)));
                assert!(v.is_ok(), "{v:?}");
            })
        });
        futures::executor::block_on(bearer.verify(&case.token)).unwrap();
        group.bench_function(BenchmarkId::new("cached_hit", case.issuer), |b| {
            b.iter(|| {
                let v = futures::executor::block_on(bearer.verify(black_box(&case.token)));
                assert!(v.is_ok());
            })
        });
        group.finish();
    }

    let rs256 = &cases[0].token;
    let mut group = c.benchmark_group(format!("token_hash/{}_bytes", rs256.len()));
    group.bench_function("sha2_sha256", |b| {
        b.iter(|| authgate::jwt::cache::token_hash(black_box(rs256)))
    });
    group.bench_function("aws_lc_sha256", |b| {
        b.iter(|| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(rs256.as_bytes()))
        })
    });
    let key = [7u8; 32];
    group.bench_function("blake3_keyed", |b| {
        b.iter(|| blake3::keyed_hash(&key, black_box(rs256.as_bytes())))
    });
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
