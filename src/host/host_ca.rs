//! HTTPS to a host of `--allow-host-ca`, part of the outbound-HTTP
//! capability: the request is sent through keyrot's own connector, whose
//! only trust roots are that host's CA bundle (see
//! [`crate::grants::HostCa`]). Everything before the send — the allow-list,
//! the request count, injected headers, signing, the body's size — is
//! `http.rs`'s, as for any host; so is the response's size limit after it.
//!
//! The send mirrors `wasmtime_wasi_http::default_send_request` (48), which
//! every other host still uses: TCP connect within the connect timeout,
//! TLS (tokio-rustls, SNI and the certificate check on the host name or IP
//! of the grant) within the same timeout, a hyper HTTP/1.1 handshake, then
//! the request with the first-byte timeout, and a response body that fails
//! when the between-bytes timeout passes without data.
//!
//! Also here, for both paths: a TLS failure's error code. A certificate
//! the roots do not vouch for is `TLS-certificate-error` (wasmtime's own
//! client reports every TLS failure as `TLS-protocol-error`), so a plugin
//! can say "not trusted" rather than "protocol error".

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use super::http::tls_provider;
use crate::grants::{HostCa, HostRule};

/// The connection's remaining work once the response head arrived: it
/// streams the body (wasi:http drives it).
pub(super) type Io = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// One granted host's TLS client, built for a call.
pub(super) struct HostTls {
    /// The host whose requests it sends.
    pub host: HostRule,
    /// The grant in words, for the plugin's log.
    pub described: String,
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl HostTls {
    /// A client that trusts the grant's certificates and nothing else.
    pub(super) fn new(grant: &HostCa) -> Result<HostTls, String> {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(tls_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS for {}: {e}", grant.host))?
            .with_root_certificates(grant.roots.clone())
            .with_no_client_auth();
        let server_name = match grant.host.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => ServerName::try_from(grant.host.host.clone())
                .map_err(|_| format!("'{}' is not a valid TLS server name", grant.host.host))?,
        };
        Ok(HostTls {
            host: grant.host.clone(),
            described: grant.describe(),
            config: Arc::new(config),
            server_name,
        })
    }

    /// Sends `request` (already admitted, with its headers and signature)
    /// to this host over TLS checked against the grant's roots.
    /// `options` holds the capped timeouts.
    pub(super) async fn send(
        &self,
        mut request: http::Request<WasiBody>,
        options: RequestOptions,
    ) -> Result<(http::Response<WasiBody>, Io), HttpError> {
        let unbounded = Duration::from_secs(600);
        let connect_timeout = options.connect_timeout.unwrap_or(unbounded);
        let first_byte_timeout = options.first_byte_timeout.unwrap_or(unbounded);
        // Tokio's interval panics on zero.
        let between_bytes_timeout = options
            .between_bytes_timeout
            .unwrap_or(unbounded)
            .max(Duration::from_nanos(1));

        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let address = (self.host.host.as_str(), self.host.port);
        let connect = async {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(HttpError::Connect)?;
            connector
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(HttpError::Tls)
        };
        let stream = tokio::time::timeout(connect_timeout, connect)
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;
        let (mut sender, conn) = tokio::time::timeout(
            connect_timeout,
            hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
        )
        .await
        .map_err(|_| HttpError::ConnectionTimeout)??;

        // Scheme and authority go on the wire only to a proxy: the request
        // line is the path and query (the Host header is already set).
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        *request.uri_mut() = path;

        let send = async move {
            let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
                .await
                .map_err(|_| HttpError::ConnectionReadTimeout)??;
            let mut timeout = tokio::time::interval(between_bytes_timeout);
            timeout.reset();
            Ok::<_, HttpError>(
                response.map(|incoming| TimedBody { incoming, timeout }.boxed_unsync()),
            )
        };
        // Wait for the response head while driving the connection.
        let mut send = pin!(send);
        let mut conn = Some(conn);
        let response = poll_fn(|cx| {
            if let Poll::Ready(done) = send.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
            let Some(running) = conn.as_mut() else {
                return Poll::Pending;
            };
            let ended = ready!(Pin::new(running).poll(cx));
            conn = None;
            match ended {
                Ok(()) => send.as_mut().poll(cx),
                Err(err) => Poll::Ready(Err(HttpError::from(err))),
            }
        })
        .await?;
        let io = async move {
            match conn {
                None => Ok(()),
                Some(conn) => conn.await.map_err(|err| {
                    if err.is_timeout() {
                        HttpError::HttpResponseTimeout
                    } else {
                        HttpError::from(err)
                    }
                }),
            }
        };
        Ok((response, Box::new(io)))
    }
}

/// A response body that fails when no data came for a while, as
/// wasmtime's own client does.
struct TimedBody {
    incoming: Incoming,
    timeout: tokio::time::Interval,
}

impl Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(err))) if err.is_timeout() => {
                Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(HttpError::from(err)))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// A TLS failure (either path) as the error the plugin gets: a certificate
/// the roots do not vouch for is [`HttpError::TlsCertificateError`], an
/// alert from the server [`HttpError::TlsAlertReceived`]; anything else
/// stays [`HttpError::Tls`] (`TLS-protocol-error`). Also returns the cause
/// in words, for the plugin's log.
pub(super) fn tls_failure(err: HttpError) -> (HttpError, Option<String>) {
    let HttpError::Tls(io) = err else {
        return (err, None);
    };
    let cause = io.to_string();
    let rustls_error = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let mapped = match rustls_error {
        Some(rustls::Error::InvalidCertificate(_)) => HttpError::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => HttpError::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        _ => HttpError::Tls(io),
    };
    (mapped, Some(cause))
}
