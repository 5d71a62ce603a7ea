//! TLS set-up, the one place it happens: trust roots, the rustls client
//! configuration, handshakes (blocking and async, each bounded in time), and
//! certificate errors in words.

use std::io::{self, BufReader};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConnection, RootCertStore};

use crate::config::{Security, TlsRoots};
use crate::error::{Error, MismatchSign};

/// A blocking TLS stream over TCP.
pub type BlockingTlsStream = rustls::StreamOwned<ClientConnection, TcpStream>;

/// An async TLS stream over any futures-io stream.
pub type AsyncTlsStream<S> = futures_rustls::client::TlsStream<S>;

fn tls_error(host: &str, reason: impl Into<String>) -> Error {
    Error::Tls {
        host: host.to_owned(),
        reason: reason.into(),
    }
}

fn pem_certificates(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_reader_iter(BufReader::new(pem)).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(Error::Config(format!("{origin} holds no PEM certificate"))),
        Err(e) => Err(Error::Config(format!("{origin} is not valid PEM: {e}"))),
    }
}

/// A rustls client configuration trusting `roots`, with ring's safe defaults
/// (TLS 1.2 and 1.3). Certificates and host names are always verified.
pub fn tls_client_config(roots: &TlsRoots) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut store = RootCertStore::empty();
    match roots {
        TlsRoots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TlsRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // Skip certificates the system holds but rustls cannot use.
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(Error::Config(
                    "no usable certificate authority in the system's store".into(),
                ));
            }
        }
        TlsRoots::CaFile(path) => {
            let origin = format!("CA file {}", path.display());
            let pem = std::fs::read(path)
                .map_err(|e| Error::Config(format!("cannot read {origin}: {e}")))?;
            for cert in pem_certificates(&pem, &origin)? {
                store
                    .add(cert)
                    .map_err(|e| Error::Config(format!("{origin}: {e}")))?;
            }
        }
        TlsRoots::CaPem(pem) => {
            for cert in pem_certificates(pem, "the CA certificate")? {
                store
                    .add(cert)
                    .map_err(|e| Error::Config(format!("the CA certificate: {e}")))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS set-up: {e}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name the certificate must match.
pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| Error::Config(format!("\"{host}\" is not a valid host name")))
}

/// A rustls error in words a user can act on.
pub fn describe_tls_error(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "the server's certificate is not signed by a trusted authority (self-signed, or a private CA: pass its certificate as the CA file)".into(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the server's certificate is for a different host name (check the server name you typed)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check this computer's clock)".into()
            }
            CertificateError::Revoked => "the server's certificate has been revoked".into(),
            other => format!("the server's certificate is invalid: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => format!("the server aborted the handshake ({alert:?})"),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the server did not speak TLS (is this the right port for the chosen security?)".into()
        }
        other => other.to_string(),
    }
}

/// A handshake that met no TLS: the port likely speaks plaintext. (After
/// STLS the caller words it otherwise.)
fn not_tls(sign: MismatchSign) -> Error {
    Error::SecurityMismatch {
        sign,
        tried: Security::Tls,
        suggested: Security::StartTls,
    }
}

/// Turns an I/O error during TLS into the right [`Error`]: certificate and
/// handshake problems become [`Error::Tls`], timeouts [`Error::Timeout`],
/// and an answer that is not TLS, or a connection closed mid-handshake,
/// [`Error::SecurityMismatch`].
pub(crate) fn tls_io_error(host: &str, e: io::Error, timeout: Duration) -> Error {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        if matches!(
            tls,
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }
        ) {
            return not_tls(MismatchSign::NotTls);
        }
        return tls_error(host, describe_tls_error(tls));
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
            what: "the TLS handshake".into(),
            after: timeout,
        },
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
            not_tls(MismatchSign::ClosedDuringHandshake)
        }
        _ => tls_error(host, e.to_string()),
    }
}

/// Runs a TLS handshake over a connected TCP stream, bounded by `timeout`.
pub fn tls_connect_blocking(
    mut tcp: TcpStream,
    host: &str,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<BlockingTlsStream, Error> {
    let mut conn = ClientConnection::new(config, server_name(host)?)
        .map_err(|e| tls_error(host, describe_tls_error(&e)))?;
    let deadline = Instant::now() + timeout;
    let write_timeout = tcp.write_timeout()?;
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout {
                what: "the TLS handshake".into(),
                after: timeout,
            });
        }
        tcp.set_read_timeout(Some(left))?;
        tcp.set_write_timeout(Some(left))?;
        conn.complete_io(&mut tcp)
            .map_err(|e| tls_io_error(host, e, timeout))?;
    }
    tcp.set_write_timeout(write_timeout)?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// Runs a TLS handshake over any futures-io stream, bounded by `timeout`
/// (with a runtime-independent timer).
pub async fn tls_connect_async<S>(
    stream: S,
    host: &str,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<AsyncTlsStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connector = futures_rustls::TlsConnector::from(config);
    let handshake = connector.connect(server_name(host)?, stream);
    match crate::timer::within(timeout, handshake).await {
        Some(Ok(tls)) => Ok(tls),
        Some(Err(e)) => Err(tls_io_error(host, e, timeout)),
        None => Err(Error::Timeout {
            what: "the TLS handshake".into(),
            after: timeout,
        }),
    }
}
