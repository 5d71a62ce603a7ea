//! Which server certificates are trusted, and why one was not.
//!
//! [`TrustVerifier`] wraps rustls's webpki verifier with what users of
//! OpenSSL and GnuTLS clients expect: a certificate that is exactly one in
//! the trust file is trusted even when it is marked as a CA (a bare
//! `openssl req -x509` makes such certificates), and certificates can be
//! pinned by SHA-256. Host name and validity are still checked for an
//! exactly trusted certificate; the handshake still proves the server holds
//! its key (rustls's signature checks). A refusal carries a [`TlsFailure`]
//! that names the reason and describes the presented certificate, so a user
//! can decide to pin it.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

use super::x509;
use crate::endpoint::{CertPin, CertificateInfo, Fingerprint, TlsFailure, TlsReason};
use crate::error::Error;

/// The SHA-256 digest of `data`, with the crypto provider's own hash (every
/// provider has one: TLS needs it).
pub(crate) fn sha256(provider: &CryptoProvider, data: &[u8]) -> Option<[u8; 32]> {
    provider.cipher_suites.iter().find_map(|suite| {
        let hash = match suite {
            rustls::SupportedCipherSuite::Tls13(s) => s.common.hash_provider,
            rustls::SupportedCipherSuite::Tls12(s) => s.common.hash_provider,
        };
        if hash.algorithm() != rustls::crypto::hash::HashAlgorithm::SHA256 {
            return None;
        }
        hash.hash(data).as_ref().try_into().ok()
    })
}

/// The SHA-256 fingerprint of a certificate (DER) as `AB:CD:...`, the form
/// [`CertPin::certificate_sha256`] and `fetch --pin-sha256` accept.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    sha256(&super::crypto_provider(), der)
        .map(|d| Fingerprint(&d).to_string())
        .unwrap_or_default()
}

/// What the certificate `der` shows (subject, issuer, validity,
/// fingerprint), as a step report or an error does.
pub(crate) fn describe_certificate(der: &[u8]) -> CertificateInfo {
    certificate_info(der, &super::crypto_provider())
}

/// What a certificate shows a user deciding whether to trust it.
fn certificate_info(der: &[u8], provider: &CryptoProvider) -> CertificateInfo {
    let parsed = x509::parse(der);
    let unreadable = || "(unreadable)".to_owned();
    CertificateInfo {
        subject: parsed
            .as_ref()
            .map_or_else(unreadable, |p| x509::name_to_string(p.subject)),
        issuer: parsed
            .as_ref()
            .map_or_else(unreadable, |p| x509::name_to_string(p.issuer)),
        not_before: parsed.as_ref().map(|p| p.not_before),
        not_after: parsed.as_ref().map(|p| p.not_after),
        sha256: sha256(provider, der).unwrap_or_default(),
    }
}

/// A rustls certificate error in a reason.
pub(crate) fn reason_of(error: &CertificateError) -> TlsReason {
    match error {
        CertificateError::UnknownIssuer => TlsReason::UnknownIssuer,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            TlsReason::WrongHost
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsReason::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TlsReason::NotYetValid
        }
        CertificateError::Revoked => TlsReason::Revoked,
        CertificateError::BadEncoding => TlsReason::BadCertificate("it could not be read".into()),
        CertificateError::BadSignature => {
            TlsReason::BadCertificate("its signature is invalid".into())
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            TlsReason::BadCertificate("it is not meant for servers".into())
        }
        CertificateError::Other(other) => {
            if let Some(failure) = other.0.downcast_ref::<TlsFailure>() {
                return failure.reason.clone();
            }
            // webpki's own error, which rustls passes on as "other".
            if format!("{:?}", other.0).contains("CaUsedAsEndEntity") {
                return TlsReason::CaUsedAsEndEntity;
            }
            TlsReason::BadCertificate(other.0.to_string())
        }
        other => TlsReason::BadCertificate(format!("{other:?}")),
    }
}

/// Trusts certificates as OpenSSL and GnuTLS users expect, beside webpki's
/// rules (see the module's description):
///
/// - with an authority (`authority`), the chain, validity and host name are
///   checked by webpki; a certificate refused as a CA used as an end entity,
///   as having an unknown issuer or (with no subject alternative name) as
///   for another host, is still trusted if it is byte for byte one of
///   `exact`, valid now and for the host name (its common name counts when
///   it has no subject alternative name, as in OpenSSL);
/// - with pins, the certificate must match one; with pins and no
///   authority, a match is all that is checked (as mpop's
///   `tls_fingerprint`).
#[derive(Debug)]
pub struct TrustVerifier {
    authority: Option<Arc<WebPkiServerVerifier>>,
    exact: Vec<CertificateDer<'static>>,
    pins: Vec<CertPin>,
    provider: Arc<CryptoProvider>,
}

impl TrustVerifier {
    /// A verifier trusting `roots` (`None`: pins only), the certificates of
    /// `exact` when presented as they are, and requiring one of `pins` when
    /// there are any.
    pub fn new(
        roots: Option<RootCertStore>,
        exact: Vec<CertificateDer<'static>>,
        pins: Vec<CertPin>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, Error> {
        let authority = match roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| Error::invalid_setting("the TLS set-up", e.to_string()))?,
            ),
            None => None,
        };
        if authority.is_none() && pins.is_empty() {
            return Err(Error::invalid_setting(
                "roots",
                "names no certificate authority and no pin is given: nothing would be trusted",
            ));
        }
        Ok(Self {
            authority,
            exact,
            pins,
            provider,
        })
    }

    fn refuse(&self, reason: TlsReason, end_entity: &[u8]) -> rustls::Error {
        let failure = TlsFailure {
            reason,
            certificate: Some(Box::new(certificate_info(end_entity, &self.provider))),
        };
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(failure))))
    }

    /// The checks webpki would have made, for a certificate trusted because
    /// it is exactly in the trust file.
    fn check_exact(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), TlsReason> {
        let bad = || TlsReason::BadCertificate("it could not be read".into());
        let parsed = x509::parse(end_entity).ok_or_else(bad)?;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < parsed.not_before {
            return Err(TlsReason::NotYetValid);
        }
        if now > parsed.not_after {
            return Err(TlsReason::Expired);
        }
        let cert = ParsedCertificate::try_from(end_entity).map_err(|_| bad())?;
        if rustls::client::verify_server_name(&cert, server_name).is_ok() {
            return Ok(());
        }
        // OpenSSL's rule: with no subject alternative name, the common name
        // is the host name.
        if let (false, ServerName::DnsName(dns)) = (parsed.has_san, server_name) {
            let wanted = dns.as_ref();
            if x509::common_names(parsed.subject)
                .iter()
                .any(|cn| cn.eq_ignore_ascii_case(wanted))
            {
                return Ok(());
            }
        }
        Err(TlsReason::WrongHost)
    }

    fn digests(&self, end_entity: &[u8]) -> ([u8; 32], Option<[u8; 32]>) {
        let certificate = sha256(&self.provider, end_entity).unwrap_or_default();
        let public_key = x509::parse(end_entity).and_then(|p| sha256(&self.provider, p.spki));
        (certificate, public_key)
    }
}

impl ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.pins.is_empty() {
            let (certificate, public_key) = self.digests(end_entity);
            if !self
                .pins
                .iter()
                .any(|pin| pin.matches(&certificate, public_key.as_ref()))
            {
                return Err(self.refuse(TlsReason::PinMismatch, end_entity));
            }
        }
        let Some(authority) = &self.authority else {
            // Pinned, and nothing else asked for.
            return Ok(ServerCertVerified::assertion());
        };
        let error = match authority.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(rustls::Error::InvalidCertificate(error)) => error,
            Err(other) => return Err(other),
        };
        let reason = match reason_of(&error) {
            TlsReason::UnknownIssuer
                if x509::parse(end_entity).is_some_and(|p| p.issuer == p.subject) =>
            {
                TlsReason::SelfSigned
            }
            reason => reason,
        };
        let exactly_trusted = self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref());
        if exactly_trusted
            && matches!(
                reason,
                TlsReason::CaUsedAsEndEntity
                    | TlsReason::UnknownIssuer
                    | TlsReason::SelfSigned
                    | TlsReason::WrongHost
            )
        {
            return match self.check_exact(end_entity, server_name, now) {
                Ok(()) => Ok(ServerCertVerified::assertion()),
                Err(reason) => Err(self.refuse(reason, end_entity)),
            };
        }
        Err(self.refuse(reason, end_entity))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn pins_parse_with_colons_and_any_case() {
        let hex = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            CertPin::certificate_sha256(&hex).unwrap(),
            CertPin::certificate_sha256(&colons).unwrap()
        );
        assert_eq!(
            CertPin::certificate_sha256(&colons).unwrap().to_string(),
            format!("certificate SHA-256 {colons}")
        );
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33), "é"] {
            let err = crate::error::Error::from(CertPin::certificate_sha256(bad).unwrap_err());
            assert_eq!(err.kind(), crate::error::ErrorKind::Config, "{bad}");
            assert!(err.to_string().starts_with("pins: "), "{err}");
        }
    }

    #[test]
    fn the_provider_hashes_sha256() {
        // SHA-256("abc")
        assert_eq!(
            certificate_fingerprint(b"abc"),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

    /// A leaf signed by a private CA, and that CA.
    #[cfg(feature = "testing")]
    fn leaf_of_private_ca(
        names: &[&str],
        expired: bool,
    ) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Example Private CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca.self_signed(&ca_key).unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut leaf = rcgen::CertificateParams::new(names).unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "mail.example.com");
        if expired {
            leaf.not_before = rcgen::date_time_ymd(2000, 1, 1);
            leaf.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        (leaf.der().clone(), ca.der().clone())
    }

    #[cfg(feature = "testing")]
    fn verify(
        trusted: &[&CertificateDer<'static>],
        presented: &CertificateDer<'static>,
        host: &str,
    ) -> Result<(), TlsFailure> {
        let mut store = RootCertStore::empty();
        for cert in trusted {
            store.add((*cert).clone()).unwrap();
        }
        let exact = trusted.iter().map(|c| (*c).clone()).collect();
        let verifier = TrustVerifier::new(
            Some(store),
            exact,
            Vec::new(),
            super::super::crypto_provider(),
        )
        .unwrap();
        let name = ServerName::try_from(host.to_owned()).unwrap();
        match verifier.verify_server_cert(presented, &[], &name, &[], UnixTime::now()) {
            Ok(_) => Ok(()),
            Err(e) => Err(super::super::describe_tls_error(&e)),
        }
    }

    #[test]
    #[cfg(feature = "testing")]
    fn a_leaf_exactly_in_the_trust_file_needs_no_issuer_but_a_name_and_a_date() {
        let (leaf, ca) = leaf_of_private_ca(&["mail.example.com"], false);
        // The usual way: its CA is trusted.
        verify(&[&ca], &leaf, "mail.example.com").unwrap();
        // The leaf alone, as GnuTLS trusts it: webpki says "unknown issuer".
        verify(&[&leaf], &leaf, "mail.example.com").unwrap();
        let wrong = verify(&[&leaf], &leaf, "other.example.com").unwrap_err();
        assert_eq!(wrong.reason, TlsReason::WrongHost);
        // Neither the leaf nor its CA: refused, and described.
        let (other, _) = leaf_of_private_ca(&["mail.example.com"], false);
        let refused = verify(&[&other], &leaf, "mail.example.com").unwrap_err();
        assert_eq!(refused.reason, TlsReason::UnknownIssuer);
        let cert = refused.certificate.unwrap();
        assert_eq!(cert.fingerprint(), certificate_fingerprint(&leaf));
        assert_eq!(cert.subject, "CN=mail.example.com");
        assert_eq!(cert.issuer, "CN=Example Private CA");
        // Expired, even when exactly trusted.
        let (old, _) = leaf_of_private_ca(&["mail.example.com"], true);
        let expired = verify(&[&old], &old, "mail.example.com").unwrap_err();
        assert_eq!(expired.reason, TlsReason::Expired);
    }
}
