//! A response the gateway answers itself (redirects, errors, endpoint bodies), written to the
//! client by the proxy in one place ([`Reply::send`]).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// A complete response: status, headers, body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(std::borrow::Cow<'static, str>, String)>,
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: vec![("Cache-Control".into(), "no-store".into())],
            body: Bytes::new(),
        }
    }

    /// 302 to `location`.
    pub fn redirect(location: impl Into<String>) -> Self {
        Self::new(302).header("Location", location)
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status)
            .header("Content-Type", "application/json")
            .body(value.to_string())
    }

    pub fn html(status: u16, html: String) -> Self {
        Self::new(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .header("X-Content-Type-Options", "nosniff")
            .header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'",
            )
            .body(html)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A header whose name comes from configuration.
    pub fn header_owned(mut self, name: String, value: String) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    pub fn set_cookie(self, cookie: String) -> Self {
        self.header("Set-Cookie", cookie)
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Write the reply; afterwards the request is finished (`request_filter` returns `Ok(true)`).
    pub async fn send(self, session: &mut Session) -> pingora::Result<()> {
        let mut resp = ResponseHeader::build(self.status, Some(self.headers.len() + 1))?;
        for (name, value) in self.headers {
            resp.append_header(name.into_owned(), value)?;
        }
        resp.insert_header("Content-Length", self.body.len().to_string())?;
        let empty = self.body.is_empty();
        session.write_response_header(Box::new(resp), empty).await?;
        if !empty {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(())
    }
}
