//! The providers' OAuth2 endpoints and scopes, as data, and the check that
//! a Microsoft access token is one POP3 and SMTP accept.

#[cfg(feature = "oauth2-http")]
use crate::config::Secret;
use crate::error::Error;

/// Microsoft's scopes for POP3 and SMTP (on `outlook.office.com`, not
/// Microsoft Graph), and a refresh token.
pub const MICROSOFT_SCOPES: [&str; 3] = [
    "https://outlook.office.com/POP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
];

/// Google's one scope for POP3 and SMTP (a "restricted" scope: an
/// application others use needs Google's verification).
pub const GOOGLE_SCOPES: [&str; 1] = ["https://mail.google.com/"];

/// Zoho's scope for POP3 access (an application may ask for more, such
/// as sending, with its own scopes).
pub const ZOHO_SCOPES: [&str; 1] = ["ZOHOMAIL.PROTOCOL.POP"];

/// Yahoo's scope for POP3 and SMTP (read and write mail; an application
/// needs Yahoo's approval for mail access).
pub const YAHOO_SCOPES: [&str; 1] = ["mail-w"];

/// Fastmail's scopes for POP3 and SMTP (Fastmail registers OAuth clients
/// by hand, on request).
pub const FASTMAIL_SCOPES: [&str; 2] = [
    "https://www.fastmail.com/dev/protocol-pop",
    "https://www.fastmail.com/dev/protocol-smtp",
];

/// Where a provider signs users in and issues tokens: data an account
/// keeps (with the feature `serde`, as `{"name": "microsoft", "tenant": ...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "name", rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum OAuthProvider {
    /// Google (Gmail, Workspace).
    Google,
    /// Yahoo Mail (and AOL).
    Yahoo,
    /// Fastmail.
    Fastmail,
    /// Microsoft (Exchange Online, Outlook.com): `tenant` is the directory
    /// (a domain or id) or `common`, `organizations`, `consumers`. Refresh
    /// at the tenant the user signed in to, not `common`, when it is known.
    Microsoft {
        /// The tenant.
        tenant: String,
    },
    /// Zoho, per data centre: `region` is the accounts host's suffix
    /// (`com`, `eu`, `in`, `com.au`, `jp`, `ca`, `sa`, `com.cn`).
    Zoho {
        /// The data centre.
        region: String,
    },
    /// Any other: the endpoints as given.
    Custom {
        /// The authorization endpoint.
        auth_url: String,
        /// The token endpoint.
        token_url: String,
        /// The device authorization endpoint, if any.
        device_url: Option<String>,
    },
}

const ZOHO_REGIONS: [&str; 8] = ["com", "eu", "in", "com.au", "jp", "ca", "sa", "com.cn"];

/// Zoho's accounts host for a data centre (Canada's is on zohocloud.ca).
fn zoho_accounts(region: &str) -> String {
    match region {
        "ca" => "accounts.zohocloud.ca".into(),
        other => format!("accounts.zoho.{other}"),
    }
}

impl OAuthProvider {
    /// Microsoft for `tenant`, refused if it cannot be a tenant (it goes
    /// into the endpoints' path).
    pub fn microsoft(tenant: &str) -> Result<Self, Error> {
        let valid = !tenant.is_empty()
            && tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !valid {
            return Err(Error::invalid_setting(
                "the Microsoft tenant",
                "must be a domain, a directory id, common, organizations or consumers",
            ));
        }
        Ok(Self::Microsoft {
            tenant: tenant.to_ascii_lowercase(),
        })
    }

    /// Zoho at the data centre `region`.
    pub fn zoho(region: &str) -> Result<Self, Error> {
        let region = region.to_ascii_lowercase();
        if !ZOHO_REGIONS.contains(&region.as_str()) {
            return Err(Error::invalid_setting(
                "the Zoho region",
                format!("must be one of {}", ZOHO_REGIONS.join(", ")),
            ));
        }
        Ok(Self::Zoho { region })
    }

    /// The authorization endpoint (where the "sign in" button leads).
    pub fn auth_url(&self) -> String {
        match self {
            Self::Google => "https://accounts.google.com/o/oauth2/v2/auth".into(),
            Self::Yahoo => "https://api.login.yahoo.com/oauth2/request_auth".into(),
            Self::Fastmail => "https://api.fastmail.com/oauth/authorize".into(),
            Self::Microsoft { tenant } => {
                format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize")
            }
            Self::Zoho { region } => format!("https://{}/oauth/v2/auth", zoho_accounts(region)),
            Self::Custom { auth_url, .. } => auth_url.clone(),
        }
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        match self {
            Self::Google => "https://oauth2.googleapis.com/token".into(),
            Self::Yahoo => "https://api.login.yahoo.com/oauth2/get_token".into(),
            Self::Fastmail => "https://api.fastmail.com/oauth/refresh".into(),
            Self::Microsoft { tenant } => {
                format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
            }
            Self::Zoho { region } => format!("https://{}/oauth/v2/token", zoho_accounts(region)),
            Self::Custom { token_url, .. } => token_url.clone(),
        }
    }

    /// The device authorization endpoint, where the provider has one.
    pub fn device_url(&self) -> Option<String> {
        match self {
            Self::Google => Some("https://oauth2.googleapis.com/device/code".into()),
            Self::Microsoft { tenant } => Some(format!(
                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode"
            )),
            Self::Zoho { .. } | Self::Yahoo | Self::Fastmail => None,
            Self::Custom { device_url, .. } => device_url.clone(),
        }
    }

    /// The scopes for POP3 and SMTP with a refresh token (empty for a
    /// custom provider).
    pub fn scopes(&self) -> Vec<String> {
        let scopes: &[&str] = match self {
            Self::Google => &GOOGLE_SCOPES,
            Self::Microsoft { .. } => &MICROSOFT_SCOPES,
            Self::Yahoo => &YAHOO_SCOPES,
            Self::Fastmail => &FASTMAIL_SCOPES,
            Self::Zoho { .. } => &ZOHO_SCOPES,
            Self::Custom { .. } => &[],
        };
        scopes.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Checks an access token before it is sent: for Microsoft, a token
    /// that says it is for another service (Microsoft Graph) is refused,
    /// naming the scopes to ask for. Tokens that are not JWTs (Outlook.com
    /// issues opaque ones) pass.
    #[cfg(feature = "oauth2-http")]
    pub fn check_access_token(&self, token: &Secret) -> Result<(), Error> {
        let Self::Microsoft { .. } = self else {
            return Ok(());
        };
        let Some(audience) = jwt_audience(token.expose()) else {
            return Ok(());
        };
        const OUTLOOK: [&str; 3] = [
            "https://outlook.office.com",
            "https://outlook.office365.com",
            "00000002-0000-0ff1-ce00-000000000000",
        ];
        let audience = audience.trim_end_matches('/');
        if OUTLOOK.contains(&audience) {
            return Ok(());
        }
        let service = match audience {
            "https://graph.microsoft.com" | "00000003-0000-0000-c000-000000000000" => {
                "Microsoft Graph".to_owned()
            }
            other => other.escape_default().to_string(),
        };
        Err(Error::invalid_setting(
            "the OAuth2 access token",
            format!(
                "is for {service}, not for Outlook's POP3 and SMTP: ask for the scopes {}",
                MICROSOFT_SCOPES.join(" ")
            ),
        ))
    }
}

/// The `aud` claim of a JWT access token, if `token` is one.
#[cfg(feature = "oauth2-http")]
fn jwt_audience(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = base64_url_decode(payload)?;
    let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
    match value.get("aud")? {
        serde_json::Value::String(aud) => Some(aud.clone()),
        serde_json::Value::Array(list) => list.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

#[cfg(feature = "oauth2-http")]
fn base64_url_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[cfg(feature = "oauth2-http")]
    fn jwt(payload: &str) -> Secret {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        Secret::new(format!("{}.{}.sig", b64(r#"{"typ":"JWT"}"#), b64(payload)))
    }

    #[test]
    fn endpoints_follow_tenant_and_region() {
        let ms = OAuthProvider::microsoft("Contoso.onmicrosoft.com").unwrap();
        assert_eq!(
            ms.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(ms
            .scopes()
            .iter()
            .any(|s| s.ends_with("POP.AccessAsUser.All")));
        assert!(OAuthProvider::microsoft("common/../x").is_err());
        let zoho = OAuthProvider::zoho("EU").unwrap();
        assert_eq!(zoho.token_url(), "https://accounts.zoho.eu/oauth/v2/token");
        assert_eq!(OAuthProvider::zoho("mars").unwrap_err().kind(), "config");
        let canada = OAuthProvider::zoho("ca").unwrap();
        assert_eq!(
            canada.token_url(),
            "https://accounts.zohocloud.ca/oauth/v2/token"
        );
        assert_eq!(OAuthProvider::Google.scopes(), ["https://mail.google.com/"]);
        assert_eq!(
            OAuthProvider::Yahoo.token_url(),
            "https://api.login.yahoo.com/oauth2/get_token"
        );
        assert!(OAuthProvider::Fastmail
            .scopes()
            .iter()
            .any(|s| s.ends_with("protocol-pop")));
    }

    #[test]
    #[cfg(feature = "oauth2-http")]
    fn a_graph_token_is_refused_for_microsoft_before_connecting() {
        let ms = OAuthProvider::microsoft("common").unwrap();
        ms.check_access_token(&jwt(
            r#"{"aud":"https://outlook.office.com","scp":"POP.AccessAsUser.All"}"#,
        ))
        .unwrap();
        // Opaque tokens (Outlook.com) cannot be read: they pass.
        ms.check_access_token(&Secret::new("EwBwA8l6BAAU")).unwrap();
        let e = ms
            .check_access_token(&jwt(r#"{"aud":"00000003-0000-0000-c000-000000000000"}"#))
            .unwrap_err();
        assert_eq!(e.kind(), "config");
        let text = e.to_string();
        assert!(text.contains("Microsoft Graph"), "{text}");
        assert!(text.contains("POP.AccessAsUser.All"), "{text}");
        // Other providers' tokens are not read.
        OAuthProvider::Google
            .check_access_token(&jwt(r#"{"aud":"https://graph.microsoft.com"}"#))
            .unwrap();
    }
}
