//! Which certificates are trusted, against the in-process server over real
//! TLS: a CA:TRUE self-signed certificate exactly in the CA file (as a bare
//! `openssl req -x509` makes), pins alone and beside a CA, a caller's own
//! verifier or rustls configuration, and refusals that name the reason and
//! describe the certificate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use pop3_client::blocking::Client;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{Fault, TestCertificate, TestServer, TestServerConfig};
use pop3_client::transport::{
    certificate_fingerprint, connect_tcp, crypto_provider, tls_client_config, tls_connect_blocking,
};
use pop3_client::{
    CertPin, ClientConfig, Credentials, CustomTls, Error, ErrorKind, Security, TlsReason, TlsRoots,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

fn server(certificate: TestCertificate, implicit_tls: bool) -> TestServer {
    TestServer::start_with_certificate(
        TestServerConfig {
            options: ServerOptions {
                stls: !implicit_tls,
                ..ServerOptions::default()
            },
            messages: vec![ServerMessage {
                uid: "u1".into(),
                content: b"Subject: hi\r\n\r\nHello\r\n".to_vec(),
            }],
            implicit_tls,
            fault: Fault::None,
            gmail: None,
            ..TestServerConfig::default()
        },
        certificate,
    )
    .unwrap()
}

fn creds() -> Credentials {
    Credentials::new("user", "password")
}

fn der(server: &TestServer) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(server.ca_pem().as_bytes()).unwrap()
}

fn fetch_one(config: &ClientConfig) -> Result<usize, Error> {
    let mut client = Client::connect(config, &creds())?;
    let n = client.uidl()?.len();
    client.quit()?;
    Ok(n)
}

fn tls_failure(err: &Error) -> &pop3_client::TlsFailure {
    match err {
        Error::Tls { failure, .. } => failure,
        other => panic!("not a TLS error: {other}"),
    }
}

#[test]
fn a_ca_certificate_exactly_in_the_ca_file_is_trusted() {
    for implicit_tls in [true, false] {
        let server = server(TestCertificate::SelfSignedCa, implicit_tls);
        assert_eq!(fetch_one(&server.client_config()).unwrap(), 1);
    }
}

#[test]
fn a_common_name_only_certificate_matches_its_common_name_as_openssl_does() {
    let server = server(TestCertificate::CommonNameOnly, true);
    let mut config = server.client_config();
    config.host = "localhost".into();
    assert_eq!(fetch_one(&config).unwrap(), 1);
    // An IP address is never matched against a common name.
    let err = fetch_one(&server.client_config()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert_eq!(tls_failure(&err).reason, TlsReason::WrongHost, "{err}");
}

#[test]
fn an_exactly_trusted_certificate_must_still_be_valid_now() {
    let server = server(TestCertificate::Expired, true);
    let err = fetch_one(&server.client_config()).unwrap_err();
    let failure = tls_failure(&err);
    assert_eq!(failure.reason, TlsReason::Expired, "{err}");
    let text = err.to_string();
    assert!(text.contains("has expired"), "{text}");
    assert!(
        text.contains("valid from 2000-01-01 00:00:00 UTC until 2001-01-01 00:00:00 UTC"),
        "{text}"
    );
}

#[test]
fn an_untrusted_certificate_is_described_for_pinning() {
    let server = server(TestCertificate::SelfSignedCa, true);
    let mut config = server.client_config();
    config.roots = TlsRoots::WebPki;
    let err = fetch_one(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls);
    let failure = tls_failure(&err);
    assert_eq!(failure.reason, TlsReason::CaUsedAsEndEntity, "{err}");
    let cert = failure.certificate.as_ref().unwrap();
    assert_eq!(cert.subject, "CN=localhost");
    assert_eq!(cert.issuer, "CN=localhost");
    let fingerprint = certificate_fingerprint(&der(&server));
    assert_eq!(cert.fingerprint(), fingerprint);
    let text = err.to_string();
    assert!(text.contains(&fingerprint), "{text}");
    assert!(text.contains("a CA certificate"), "{text}");
    assert!(!text.contains("Other("), "no Debug dump: {text}");

    // A leaf that is self-signed says so.
    let leaf = self::server(TestCertificate::Leaf, true);
    let mut config = leaf.client_config();
    config.roots = TlsRoots::WebPki;
    let err = fetch_one(&config).unwrap_err();
    assert_eq!(tls_failure(&err).reason, TlsReason::SelfSigned, "{err}");
}

#[test]
fn a_pin_alone_is_enough_and_a_wrong_pin_fails_before_login() {
    let server = server(TestCertificate::SelfSignedCa, false);
    let fingerprint = certificate_fingerprint(&der(&server));
    let mut config = server.client_config();
    config.roots = TlsRoots::PinsOnly;
    config.pins = vec![CertPin::certificate_sha256(&fingerprint.to_lowercase()).unwrap()];
    assert_eq!(fetch_one(&config).unwrap(), 1);

    // A pin names the certificate, not the host: no name check.
    let mut by_name = config.clone();
    by_name.host = "localhost".into();
    assert_eq!(fetch_one(&by_name).unwrap(), 1);

    config.pins = vec![CertPin::certificate_sha256(&"00".repeat(32)).unwrap()];
    let err = Client::open(&config).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert_eq!(tls_failure(&err).reason, TlsReason::PinMismatch, "{err}");
    assert!(err.to_string().contains(&fingerprint), "{err}");
}

#[test]
fn a_public_key_pin_and_a_pin_beside_a_ca_file() {
    let server = server(TestCertificate::Leaf, true);
    let cert = der(&server);
    // The key's digest, by a second route: the SPKI of the certificate.
    let spki = rustls::server::ParsedCertificate::try_from(&cert)
        .unwrap()
        .subject_public_key_info();
    let digest = certificate_fingerprint(spki.as_ref());
    let mut config = server.client_config();
    config.roots = TlsRoots::PinsOnly;
    config.pins = vec![CertPin::public_key_sha256(&digest).unwrap()];
    assert_eq!(fetch_one(&config).unwrap(), 1);

    // Beside a CA, both must hold.
    let mut both = server.client_config();
    both.pins = vec![CertPin::certificate_sha256(&certificate_fingerprint(&cert)).unwrap()];
    assert_eq!(fetch_one(&both).unwrap(), 1);
    both.roots = TlsRoots::WebPki;
    let err = fetch_one(&both).unwrap_err();
    assert_eq!(tls_failure(&err).reason, TlsReason::SelfSigned, "{err}");
}

/// A caller's verifier that trusts one certificate, whatever it is.
#[derive(Debug)]
struct TrustOnly(CertificateDer<'static>);

impl ServerCertVerifier for TrustOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = crypto_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = crypto_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crypto_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[test]
fn a_callers_verifier_or_rustls_config_decides() {
    let server = server(TestCertificate::SelfSignedCa, true);
    let mut config = server.client_config();
    config.roots = TlsRoots::WebPki; // ignored: the verifier decides
    config.custom_tls = Some(CustomTls::Verifier(Arc::new(TrustOnly(der(&server)))));
    assert_eq!(fetch_one(&config).unwrap(), 1);

    let other = self::server(TestCertificate::Leaf, true);
    config.port = Some(other.addr().port());
    let err = fetch_one(&config).unwrap_err();
    assert_eq!(tls_failure(&err).reason, TlsReason::UnknownIssuer, "{err}");

    let rustls_config = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustOnly(der(&other))))
        .with_no_client_auth();
    config.custom_tls = Some(CustomTls::Config(Arc::new(rustls_config)));
    assert_eq!(fetch_one(&config).unwrap(), 1);

    config.pins = vec![CertPin::certificate_sha256(&"00".repeat(32)).unwrap()];
    let err = fetch_one(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("pins"), "{err}");
}

#[test]
fn pins_only_without_a_pin_is_a_config_error() {
    let mut config = ClientConfig::new("127.0.0.1");
    config.security = Security::Tls;
    config.roots = TlsRoots::PinsOnly;
    let err = Client::open(&config).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("roots"), "{err}");
}

/// Made the usual way, with OpenSSL 3.0 and no extension asked for:
/// `openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=localhost`.
/// It is CA:TRUE, has no subject alternative name, and is valid until 2126
/// (a GeneralizedTime). A test fixture: the key protects nothing.
const OPENSSL_CERT: &str = include_str!("data/openssl-req-x509.cert.pem");
const OPENSSL_KEY: &str = include_str!("data/openssl-req-x509.key.pem");
/// `openssl x509 -noout -fingerprint -sha256` of it.
const OPENSSL_FINGERPRINT: &str =
    "C0:36:0A:D7:ED:01:20:AD:72:DD:B9:98:97:6E:2F:3D:23:48:44:C5:C2:AC:9B:D3:6D:AF:10:86:65:C4:F6:82";

/// A TLS server on 127.0.0.1 presenting the OpenSSL-made certificate, for
/// `handshakes` handshakes.
fn openssl_made_server(handshakes: usize) -> u16 {
    let cert = CertificateDer::from_pem_slice(OPENSSL_CERT.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(OPENSSL_KEY.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(handshakes) {
            let mut tcp = tcp.unwrap();
            let mut conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            while conn.is_handshaking() {
                if conn.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
        }
    });
    port
}

#[test]
fn a_certificate_made_by_a_bare_openssl_req_x509_is_trusted_from_the_ca_file() {
    let port = openssl_made_server(4);
    let handshake = |roots: TlsRoots, host: &str| {
        let tls = tls_client_config(&roots, &[], None).unwrap();
        let tcp = connect_tcp("127.0.0.1", port, Duration::from_secs(10)).unwrap();
        tls_connect_blocking(tcp, host, tls, Duration::from_secs(10)).map(|_| ())
    };
    let ca_file = || TlsRoots::CaPem(OPENSSL_CERT.as_bytes().to_vec());
    handshake(ca_file(), "localhost").unwrap();
    // As OpenSSL: the common name is never matched against an address.
    let err = handshake(ca_file(), "127.0.0.1").unwrap_err();
    assert_eq!(tls_failure(&err).reason, TlsReason::WrongHost, "{err}");
    let err = handshake(ca_file(), "mail.example.com").unwrap_err();
    assert_eq!(tls_failure(&err).reason, TlsReason::WrongHost, "{err}");
    // Not in the trust file: what the user saw before, now in words, with
    // the fingerprint OpenSSL prints.
    let err = handshake(TlsRoots::WebPki, "localhost").unwrap_err();
    let failure = tls_failure(&err);
    assert_eq!(failure.reason, TlsReason::CaUsedAsEndEntity, "{err}");
    let cert = failure.certificate.as_ref().unwrap();
    assert_eq!(cert.fingerprint(), OPENSSL_FINGERPRINT);
    assert_eq!(cert.subject, "CN=localhost");
    assert!(err.to_string().contains("until 2126-"), "{err}");
}
