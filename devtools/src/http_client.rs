//! The dev tools' one HTTP(S) client, for requests a user points them at (a Function URL, the
//! lab's receiver, a local handler): http or https with the OS's CA roots, HTTP/1.1, one bounded
//! wait per request.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A client; build one and reuse it (it keeps connections open).
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client trusting the OS's CA roots.
    pub fn new() -> Self {
        let roots = rustls_native_certs::load_native_certs();
        let mut store = rustls::RootCertStore::empty();
        for cert in roots.certs {
            let _ = store.add(cert);
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(store)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends `method url` with `headers` and `body`; the answer's status and body, or why there
    /// is none (refused, reset, no answer within `timeout`).
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body.into()))
            .map_err(|e| format!("bad request: {e}"))?;
        let response = tokio::time::timeout(timeout, self.inner.request(request))
            .await
            .map_err(|_| format!("no answer within {} s", timeout.as_secs_f64()))?
            .map_err(|e| match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            })?;
        let status = response.status().as_u16();
        let body = tokio::time::timeout(timeout, response.into_body().collect())
            .await
            .map_err(|_| {
                format!(
                    "the answer's body did not arrive within {} s",
                    timeout.as_secs_f64()
                )
            })?
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
