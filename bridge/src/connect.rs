//! Outbound connections: one rustls configuration (the AWS SDK's aws-lc-rs provider and the
//! operating system's CA roots, as the SDK itself uses) shared by the WebSocket client and the
//! HTTP client for the SSE feed and `GET /event-types`. Plain `ws://` and `http://` are accepted
//! for local stand-ins.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookrelay_ingest::stream::StreamSource;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use tokio::time::timeout;

use crate::FatalError;

/// How long a TCP (and TLS) connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a provider may take to answer a request or an upgrade.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// The HTTP client for the providers' HTTP endpoints.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("TLS setup failed: {0}")]
pub struct TlsSetupError(String);

/// The client TLS configuration: TLS 1.2 and 1.3 with aws-lc-rs, trusting the system's roots.
pub fn tls_config() -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            errors = found.errors.len(),
            "no CA certificates found on this system (install ca-certificates); \
             only plain ws:// and http:// providers can be reached"
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsSetupError(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An HTTP/1.1 client over `tls`, also speaking plain HTTP.
pub fn http_client(tls: Arc<ClientConfig>) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(https)
}

/// Sends `request` to `stream`'s provider. `Ok(Ok(response))` for a 2xx; `Ok(Err(reason))` for
/// a failure worth retrying (no answer in time, a connection error, any other status); `Err` when
/// the provider refuses the credentials held in `credentials` (401 or 403), which the stream
/// retries only a few times, with long waits (`AuthRetries`).
pub async fn send(
    http: &HttpClient,
    request: Request<Empty<Bytes>>,
    stream: StreamSource,
    credentials: &'static str,
) -> Result<Result<Response<Incoming>, String>, FatalError> {
    let response = match timeout(RESPONSE_TIMEOUT, http.request(request)).await {
        Err(_) => return Ok(Err("no response in time".into())),
        Ok(Err(error)) => return Ok(Err(format!("request failed: {error}"))),
        Ok(Ok(response)) => response,
    };
    refused(stream, response.status().as_u16(), credentials)?;
    if !response.status().is_success() {
        return Ok(Err(format!("answered {}", response.status().as_u16())));
    }
    Ok(Ok(response))
}

/// The fatal error for a 401 or 403 from `stream`'s provider.
pub fn refused(
    stream: StreamSource,
    status: u16,
    credentials: &'static str,
) -> Result<(), FatalError> {
    if status == 401 || status == 403 {
        return Err(FatalError::Unauthorized {
            stream: stream.provider(),
            status,
            variable: credentials,
        });
    }
    Ok(())
}

/// The `Authorization` value, marked sensitive so no HTTP layer logs it.
pub fn bearer_header(bearer: &str) -> Result<HeaderValue, FatalError> {
    let mut value = HeaderValue::from_str(bearer).map_err(|_| {
        FatalError::Setup("an API token holds characters a header can't carry".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}
