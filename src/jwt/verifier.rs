//! Full verification of a JWT bearer token against one trusted issuer.
//!
//! The header is read first and checked against the allow-list: `alg: none` is never accepted,
//! the algorithm must be in the issuer's list and match the key's type, and a `crit` header the
//! gateway does not understand (it understands none) rejects the token. `jku`, `x5u`, `x5c` and an
//! embedded `jwk` are ignored: keys come only from configuration and the issuer's JWKS.
//!
//! Signature, `exp`, `nbf`, `iss` and `aud` are checked by jsonwebtoken (with the leeway); the
//! gateway adds what it does not do: `iat` not in the future, the configured subject claim, and
//! the rule of ../shared/seeds/synapse-jwt-login.txt that a token carrying `aud` is rejected when
//! no audience is configured (jsonwebtoken enforces it when `aud` is unset; a test pins it).

use super::keys::{KeySet, RemoteJwks, VerifyKey};
use super::{BearerError, VerifiedToken};
use crate::identity::Identity;
use crate::session::unix_now;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The JOSE header fields the gateway looks at.
#[derive(Debug, Deserialize)]
pub struct JoseHeader {
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub crit: Option<Value>,
}

/// A token split into its parts, with header and payload decoded (not yet verified).
pub struct ParsedToken<'a> {
    pub header: JoseHeader,
    pub alg: Algorithm,
    pub claims: Map<String, Value>,
    pub raw: &'a str,
}

/// Decode header and payload; refuse what no key could make valid.
pub fn parse(token: &str) -> Result<ParsedToken<'_>, BearerError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BearerError::Malformed(
            "a JWT has three dot-separated parts",
        ));
    };
    if h.is_empty() || p.is_empty() {
        return Err(BearerError::Malformed("empty JWT part"));
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| BearerError::Malformed("header is not base64url"))?;
    let header: JoseHeader = serde_json::from_slice(&header_bytes)
        .map_err(|_| BearerError::Malformed("header is not a JSON object with alg"))?;
    if header.alg.eq_ignore_ascii_case("none") || s.is_empty() {
        return Err(BearerError::AlgorithmNotAllowed);
    }
    if header.crit.is_some() {
        return Err(BearerError::UnsupportedCritical);
    }
    let alg: Algorithm = header
        .alg
        .parse()
        .map_err(|_| BearerError::AlgorithmNotAllowed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| BearerError::Malformed("payload is not base64url"))?;
    let claims = match serde_json::from_slice(&payload) {
        Ok(Value::Object(map)) => map,
        _ => return Err(BearerError::Malformed("payload is not a JSON object")),
    };
    Ok(ParsedToken {
        header,
        alg,
        claims,
        raw: token,
    })
}

/// One issuer whose tokens the gateway accepts.
pub struct TrustedIssuer {
    pub issuer: String,
    /// Accepted audiences; empty means a token must carry no `aud`.
    pub audiences: Vec<String>,
    /// The allowed algorithms, each with the checks jsonwebtoken makes for it
    /// ([`TrustedIssuer::validations`]).
    pub validations: Vec<(Algorithm, Validation)>,
    pub subject_claim: String,
    /// Keys from files and secrets.
    pub static_keys: KeySet,
    /// Keys from a JWKS endpoint.
    pub remote: Option<Arc<RemoteJwks>>,
    /// Where `remote` comes from (kept across reloads when unchanged).
    pub jwks_source: Option<crate::config::JwksSource>,
    pub leeway: Duration,
}

impl TrustedIssuer {
    /// What jsonwebtoken checks for each of `algorithms`: `exp` and `nbf` with the leeway, `iss`,
    /// `aud`, the required claims. Built once per configuration, not per token: a `Validation`
    /// holds three hash sets, and one key verifies one algorithm, so each gets its own.
    pub fn validations(
        issuer: &str,
        audiences: &[String],
        algorithms: &[Algorithm],
        leeway: Duration,
        require_exp: bool,
    ) -> Vec<(Algorithm, Validation)> {
        // jsonwebtoken checks `aud` only when a token carries one it can read: a token with no
        // `aud`, or an `aud` that is neither a string nor an array of strings, would pass. So
        // an issuer with audiences requires the claim.
        let mut required = vec!["iss"];
        if require_exp {
            required.push("exp");
        }
        if !audiences.is_empty() {
            required.push("aud");
        }
        algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = leeway.as_secs();
                v.validate_nbf = true;
                v.set_issuer(&[issuer]);
                if audiences.is_empty() {
                    v.aud = None;
                } else {
                    v.set_audience(audiences);
                }
                v.set_required_spec_claims(&required);
                (alg, v)
            })
            .collect()
    }

    /// Verify `token` (already parsed, its `iss` equal to this issuer's).
    pub async fn verify(&self, token: &ParsedToken<'_>) -> Result<VerifiedToken, BearerError> {
        let Some((_, validation)) = self.validations.iter().find(|(alg, _)| *alg == token.alg)
        else {
            return Err(BearerError::AlgorithmNotAllowed);
        };
        let kid = token.header.kid.as_deref();
        let mut remote_keys = self.remote.as_ref().map(|r| r.keys());
        // Refetch for a kid no key carries, even when a kid-less key (a PEM file) could be tried:
        // that key must not hide a rotation at the provider.
        if let (Some(remote), Some(kid)) = (&self.remote, kid) {
            let known = self.static_keys.has_kid(kid)
                || remote_keys.as_deref().is_some_and(|set| set.has_kid(kid));
            if !known && remote.refetch_for(kid).await {
                remote_keys = Some(remote.keys());
            }
        }
        let keys = self.candidates(remote_keys.as_deref(), kid, token.alg);
        if keys.is_empty() {
            return Err(BearerError::UnknownKey);
        }
        let mut last = BearerError::BadSignature;
        for key in keys {
            // The claims were parsed once already (`parse`); jsonwebtoken only checks them.
            match jsonwebtoken::decode::<IgnoredAny>(token.raw, &key.key, validation) {
                Ok(_) => return self.accept(token),
                Err(e) => {
                    last = map_jwt_error(e.kind());
                    // A claim failure is the same under every key; only signatures differ.
                    if last != BearerError::BadSignature {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// Static keys, then the remote set's, that may verify `kid` + `alg`.
    fn candidates<'k>(
        &'k self,
        remote: Option<&'k KeySet>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Vec<&'k VerifyKey> {
        let mut out = self.static_keys.candidates(kid, alg);
        if let Some(set) = remote {
            out.extend(set.candidates(kid, alg));
        }
        out
    }

    /// The checks jsonwebtoken leaves to the gateway, then the verified result.
    fn accept(&self, token: &ParsedToken<'_>) -> Result<VerifiedToken, BearerError> {
        let now = unix_now();
        let claims = &token.claims;
        if let Some(iat) = claims.get("iat") {
            let iat = numeric_date(iat).ok_or(BearerError::Malformed("iat is not a number"))?;
            if iat > now + self.leeway.as_secs() {
                return Err(BearerError::IssuedInFuture);
            }
        }
        if self.audiences.is_empty() && claims.contains_key("aud") {
            return Err(BearerError::UnexpectedAudience);
        }
        let subject = claims
            .get(&self.subject_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(BearerError::MissingSubject)?
            .to_string();
        Ok(VerifiedToken {
            identity: Arc::new(Identity::new(&subject, claims)),
            expires_at: claims.get("exp").and_then(numeric_date),
            scopes: super::scopes_of(claims),
        })
    }
}

/// A JWT NumericDate (RFC 7519 §2) in whole seconds, read as jsonwebtoken reads `exp` and `nbf`:
/// an integer, or a non-negative finite number rounded (`1700000000.5` is a valid `exp`). `None`
/// for anything else.
pub fn numeric_date(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then(|| f.round() as u64)
}

fn map_jwt_error(kind: &ErrorKind) -> BearerError {
    match kind {
        ErrorKind::ExpiredSignature => BearerError::Expired,
        ErrorKind::ImmatureSignature => BearerError::NotYetValid,
        ErrorKind::InvalidAudience => BearerError::WrongAudience,
        ErrorKind::InvalidIssuer => BearerError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => BearerError::MissingExp,
        // Absent, or not a string or an array of strings.
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => BearerError::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            BearerError::Malformed("a registered claim is missing or malformed")
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            BearerError::AlgorithmNotAllowed
        }
        ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidToken => BearerError::Malformed("the token cannot be decoded"),
        _ => BearerError::BadSignature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn parse_refuses_garbage_before_any_key_is_touched() {
        let p = b64(r#"{"sub":"x"}"#);
        let cases = [
            ("", "three"),
            ("a.b", "three"),
            ("a.b.c.d", "three"),
            ("..", "empty"),
            (&format!("{}.{p}.sig", b64("not json")), "header"),
            (&format!("{}.{p}.sig", b64(r#"{"typ":"JWT"}"#)), "header"),
            (&format!("{}=.{p}.sig", b64(r#"{"alg":"RS256"}"#)), "base64"),
            (
                &format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64("[1,2]")),
                "JSON object",
            ),
            (
                &format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64("nope")),
                "JSON object",
            ),
        ];
        for (token, _) in cases {
            assert!(parse(token).is_err(), "{token}");
        }
        let none = format!("{}.{p}.", b64(r#"{"alg":"none"}"#));
        assert_eq!(parse(&none).err(), Some(BearerError::AlgorithmNotAllowed));
        let none_signed = format!("{}.{p}.xx", b64(r#"{"alg":"NoNe"}"#));
        assert_eq!(
            parse(&none_signed).err(),
            Some(BearerError::AlgorithmNotAllowed)
        );
        let crit = format!(
            "{}.{p}.xx",
            b64(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#)
        );
        assert_eq!(parse(&crit).err(), Some(BearerError::UnsupportedCritical));
        let weird = format!("{}.{p}.xx", b64(r#"{"alg":"XX999"}"#));
        assert_eq!(parse(&weird).err(), Some(BearerError::AlgorithmNotAllowed));
        let ok = format!(
            "{}.{p}.xx",
            b64(r#"{"alg":"RS256","kid":"../../etc/passwd"}"#)
        );
        assert_eq!(
            parse(&ok).unwrap().header.kid.as_deref(),
            Some("../../etc/passwd")
        );
    }
}
