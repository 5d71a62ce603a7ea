//! What a server advertised in an earlier session, kept by the caller
//! between polls, so that a session to a known server spends fewer round
//! trips: CAPA goes in one flight with the login, and the CAPA after login
//! with the first commands of the transaction.

use pop3_proto::server::capability_line;
use pop3_proto::{Capabilities, Capability};

/// A server's capabilities before and after login, as a session saw them
/// ([`Client::server_profile`](crate::blocking::Client::server_profile)).
/// Given back in [`ClientConfig::server_profile`](crate::ClientConfig::server_profile),
/// a session pipelines what the remembered PIPELINING allows; this
/// session's own CAPA answers are still read, and replace the memory.
///
/// ```
/// use pop3_client::pop3::ServerProfile;
/// let text = "before PIPELINING\nbefore SASL PLAIN\nafter PIPELINING\nafter UIDL\n";
/// let profile = ServerProfile::from_text(text);
/// assert!(profile.before_login.pipelining());
/// assert_eq!(profile.to_text(), text);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerProfile {
    /// CAPA before login (after STLS, when the session used it).
    pub before_login: Capabilities,
    /// CAPA after login.
    pub after_login: Capabilities,
}

impl ServerProfile {
    /// Whether both phases were seen (a profile worth keeping).
    pub fn is_complete(&self) -> bool {
        !self.before_login.is_empty() && !self.after_login.is_empty()
    }

    /// One line per capability, `before CAP` or `after CAP`, as CAPA
    /// lists them: a text to keep beside the sync state.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (phase, caps) in [("before", &self.before_login), ("after", &self.after_login)] {
            for cap in caps.iter() {
                text.push_str(phase);
                text.push(' ');
                text.push_str(&capability_line(cap));
                text.push('\n');
            }
        }
        text
    }

    /// Reads [`Self::to_text`] back; lines in another form are skipped (a
    /// damaged memory only costs round trips).
    pub fn from_text(text: &str) -> Self {
        let mut profile = Self::default();
        for line in text.lines() {
            let (phase, cap) = match line.split_once(' ') {
                Some(("before", cap)) => (&mut profile.before_login, cap),
                Some(("after", cap)) => (&mut profile.after_login, cap),
                _ => continue,
            };
            if !cap.trim().is_empty() {
                phase.push(Capability::parse(cap.trim().as_bytes()));
            }
        }
        profile
    }
}
