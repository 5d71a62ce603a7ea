//! The application's key for the secrets kept in the database.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// The environment variable applications conventionally take the key from
/// (32 bytes, base64): [`DbKey::from_env`].
pub const DB_KEY_ENV: &str = "POP3_DB_KEY";

/// Why a key or a sealed secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No key was given, and the database holds or would hold secrets.
    #[error("no key for the secrets in the database: set {DB_KEY_ENV} to 32 random bytes in base64 (for example the output of `openssl rand -base64 32`)")]
    Missing,
    /// The key is not 32 bytes of base64.
    #[error("the key in {DB_KEY_ENV} is not 32 bytes in base64: {0}")]
    Malformed(String),
    /// A secret does not open with this key (another key sealed it, or
    /// the row was altered).
    #[error("the secrets of mailbox \"{0}\" do not open with this key and these settings: was {DB_KEY_ENV} changed, or the mailbox's server or user altered in the database, since they were stored?")]
    WrongKey(String),
}

/// A 32-byte key sealing each mailbox's secrets with XChaCha20-Poly1305
/// (a random nonce per seal; what the caller binds it to as associated
/// data: the store binds each secret to its mailbox and its servers, so a
/// sealed secret moved to another row, or a row whose server was altered,
/// does not open).
///
/// ```
/// use pop3_client::sql::DbKey;
/// let key = DbKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
/// let sealed = key.seal("work", b"s3cret");
/// assert_eq!(key.open("work", &sealed).unwrap().as_slice(), b"s3cret");
/// assert!(key.open("home", &sealed).is_err());
/// ```
#[derive(Clone)]
pub struct DbKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(..)")
    }
}

impl DbKey {
    /// The key from 32 bytes in base64 (standard alphabet, padded).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| KeyError::Malformed(e.to_string()))?,
        );
        if bytes.len() != 32 {
            return Err(KeyError::Malformed(format!(
                "{} bytes, not 32",
                bytes.len()
            )));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(Self { cipher })
    }

    /// The key in the environment variable [`DB_KEY_ENV`], if set.
    pub fn from_env() -> Result<Option<Self>, KeyError> {
        match std::env::var(DB_KEY_ENV) {
            Ok(text) => Self::from_base64(&text).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(KeyError::Malformed("not UTF-8".to_owned()))
            }
        }
    }

    /// `secret` sealed for the mailbox `name`: nonce then ciphertext.
    pub fn seal(&self, name: &str, secret: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: secret,
            aad: name.as_bytes(),
        };
        // Encryption into a Vec fails only past the cipher's length limit
        // (256 GiB), far beyond any secret.
        let sealed = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// What [`seal`](Self::seal) sealed for `name`.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let wrong = || KeyError::WrongKey(name.to_owned());
        if sealed.len() < 24 {
            return Err(wrong());
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        let payload = Payload {
            msg: ciphertext,
            aad: name.as_bytes(),
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| wrong())
    }
}
