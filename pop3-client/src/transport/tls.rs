//! TLS set-up, the one place it happens: trust roots, the rustls client
//! configuration, handshakes (blocking and async, each bounded in time), and
//! certificate errors in words.

use std::io::{self, BufReader};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConnection, RootCertStore};

use super::trust::{reason_of, TrustVerifier};
use super::ReadTimeout;
use crate::endpoint::{CertPin, CustomTls, Protocol, Security, TlsFailure, TlsReason, TlsRoots};
use crate::error::{Error, MismatchSign};

/// A blocking TLS stream, over TCP unless said otherwise.
pub type BlockingTlsStream<S = TcpStream> = rustls::StreamOwned<ClientConnection, S>;

/// An async TLS stream over any futures-io stream.
pub type AsyncTlsStream<S> = futures_rustls::client::TlsStream<S>;

fn tls_error(host: &str, failure: impl Into<TlsFailure>) -> Error {
    Error::Tls {
        host: host.to_owned(),
        failure: failure.into(),
    }
}

fn pem_certificates(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_reader_iter(BufReader::new(pem)).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(Error::invalid_setting(origin, "holds no PEM certificate")),
        Err(e) => Err(Error::invalid_setting(
            origin,
            format!("is not valid PEM: {e}"),
        )),
    }
}

/// The crypto provider: the process default if the application installed
/// one (`CryptoProvider::install_default`), otherwise aws-lc-rs with the
/// `aws-lc-rs` feature, otherwise ring.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Arc::clone(installed);
    }
    #[cfg(feature = "aws-lc-rs")]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(not(feature = "aws-lc-rs"))]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The authorities `roots` names, and the certificates of a trust file (a
/// certificate exactly among them is trusted as OpenSSL and GnuTLS do).
fn load_roots(
    roots: &TlsRoots,
) -> Result<(Option<RootCertStore>, Vec<CertificateDer<'static>>), Error> {
    let mut store = RootCertStore::empty();
    let mut exact = Vec::new();
    match roots {
        TlsRoots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TlsRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // Skip certificates the system holds but rustls cannot use.
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(Error::invalid_setting(
                    "roots",
                    "is System, but the system's store holds no usable certificate authority",
                ));
            }
        }
        TlsRoots::CaFile(path) => {
            let origin = format!("CA file {}", path.display());
            let pem = std::fs::read(path)
                .map_err(|e| Error::invalid_setting(&origin, format!("cannot be read: {e}")))?;
            for cert in pem_certificates(&pem, &origin)? {
                store
                    .add(cert.clone())
                    .map_err(|e| Error::invalid_setting(&origin, e.to_string()))?;
                exact.push(cert);
            }
        }
        TlsRoots::CaPem(pem) => {
            for cert in pem_certificates(pem, "the CA certificate")? {
                store
                    .add(cert.clone())
                    .map_err(|e| Error::invalid_setting("the CA certificate", e.to_string()))?;
                exact.push(cert);
            }
        }
        TlsRoots::PinsOnly => return Ok((None, exact)),
    }
    Ok((Some(store), exact))
}

/// A rustls client configuration (TLS 1.2 and 1.3, the provider's safe
/// defaults) that trusts `roots` and requires one of `pins` if there are
/// any (see [`TrustVerifier`]); `custom` replaces both. Certificates and
/// host names are verified unless a pin alone is the trust, or a custom
/// verifier decides.
pub fn tls_client_config(
    roots: &TlsRoots,
    pins: &[CertPin],
    custom: Option<&CustomTls>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = crypto_provider();
    let verifier: Arc<dyn ServerCertVerifier> = match custom {
        Some(CustomTls::Config(config)) => return Ok(Arc::clone(config)),
        Some(CustomTls::Verifier(verifier)) => Arc::clone(verifier),
        None => {
            let (store, exact) = load_roots(roots)?;
            Arc::new(TrustVerifier::new(
                store,
                exact,
                pins.to_vec(),
                Arc::clone(&provider),
            )?)
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid_setting("the TLS set-up", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl crate::endpoint::Endpoint {
    /// The rustls configuration these settings ask for: their roots, pins
    /// or custom set-up (see [`tls_client_config`]).
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        tls_client_config(&self.roots, &self.pins, self.custom_tls.as_ref())
    }
}

/// The name the certificate must match.
pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(super::tcp::unbracket(host).to_owned())
        .map_err(|_| Error::invalid_setting("host", format!("\"{host}\" is not a valid host name")))
}

/// A rustls error as a typed failure: for a refused certificate, the
/// reason and (from [`TrustVerifier`]) the certificate presented.
pub fn describe_tls_error(error: &rustls::Error) -> TlsFailure {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            match other.0.downcast_ref::<TlsFailure>() {
                Some(failure) => failure.clone(),
                None => TlsFailure::new(reason_of(&CertificateError::Other(other.clone()))),
            }
        }
        rustls::Error::InvalidCertificate(cert) => TlsFailure::new(reason_of(cert)),
        rustls::Error::AlertReceived(alert) => {
            TlsFailure::new(TlsReason::Alert(format!("{alert:?}")))
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            TlsFailure::new(TlsReason::NotTls)
        }
        other => TlsFailure::new(TlsReason::Other(other.to_string())),
    }
}

/// A handshake that met no TLS: the port likely speaks plaintext. (After
/// STLS the caller words it otherwise.)
fn not_tls(sign: MismatchSign) -> Error {
    Error::SecurityMismatch {
        sign,
        tried: Security::Tls,
        suggested: Security::StartTls,
        // The protocol is named by the client that knows it
        // (Error::for_protocol).
        protocol: Protocol::Pop3,
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
        _ => tls_error(host, TlsReason::Other(e.to_string())),
    }
}

/// Runs a TLS handshake over a connected stream (TCP, or any stream whose
/// reads and writes can be bounded), within `timeout`.
pub fn tls_connect_blocking<S: ReadTimeout>(
    mut sock: S,
    host: &str,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<BlockingTlsStream<S>, Error> {
    let mut conn = ClientConnection::new(config, server_name(host)?)
        .map_err(|e| tls_error(host, describe_tls_error(&e)))?;
    // A limit too large for the clock (Duration::MAX) is no limit.
    let deadline = Instant::now().checked_add(timeout);
    while conn.is_handshaking() {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|left| left.is_zero()) {
            return Err(Error::Timeout {
                what: "the TLS handshake".into(),
                after: timeout,
            });
        }
        sock.set_read_timeout(left)?;
        sock.set_write_timeout(left)?;
        conn.complete_io(&mut sock)
            .map_err(|e| tls_io_error(host, e, timeout))?;
    }
    Ok(rustls::StreamOwned::new(conn, sock))
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
