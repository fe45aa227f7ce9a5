//! Where a browser may be sent after login: same-site paths only.
//!
//! Open redirects recur in every peer (oauth2-proxy CVE-2020-5233 `/\`, CVE-2020-11053 encoded
//! whitespace, mod_auth_openidc CVE-2022-23527). A target is accepted only if it is a path that
//! starts with exactly one `/`, and stays one after one round of percent-decoding: no `//`, no
//! `/\`, no scheme, no control characters or whitespace, encoded or not. Anything else becomes `/`.

/// `raw` if it is a safe same-site path, else `/`.
pub fn safe_return_to(raw: &str) -> String {
    if is_safe_path(raw) {
        raw.to_string()
    } else {
        "/".to_string()
    }
}

fn is_safe_path(raw: &str) -> bool {
    if raw.len() > 4096 {
        return false;
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    for candidate in [raw.as_bytes(), decoded.as_slice()] {
        let ok = candidate.first() == Some(&b'/')
            && !matches!(candidate.get(1), Some(b'/') | Some(b'\\'))
            && !candidate
                .iter()
                .any(|&b| b <= b' ' || b == 0x7f || b == b'\\');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_site_paths_survive() {
        for ok in ["/", "/app", "/app/x?y=1&z=/w", "/a#frag", "/caf%C3%A9"] {
            assert_eq!(safe_return_to(ok), ok);
        }
        for evil in [
            "//evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "/%2F%2Fevil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "%2F%2Fevil.example",
            "/%09/evil.example",
            "/\t/evil.example",
            "/%0d%0aSet-Cookie:x",
            " /app",
            "",
            "evil",
        ] {
            assert_eq!(safe_return_to(evil), "/", "{evil:?}");
        }
    }
}
