//! Compose and send through the active mailbox's outgoing settings: the
//! message built by mail-builder, sent by the library's SMTP client.

use mail_builder::MessageBuilder;
use pop3_client::account::Account;
use pop3_client::smtp::{SmtpClient, SmtpConfig};

/// Sends a text message from `account` to `to`: on refusal, its kind
/// (limit, too-big, recipient...) and the server's words.
pub(crate) fn send(
    account: &Account,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<(), (String, String)> {
    let refuse = |kind: &str, words: String| Err((kind.to_owned(), words));
    let Some((config, credentials)) = SmtpConfig::for_account(account) else {
        return refuse("config", "this account has no outgoing server".to_owned());
    };
    let to = to.trim();
    if to.is_empty() || to.contains(['\r', '\n', '\0']) {
        return refuse("recipient", "give one recipient's address".to_owned());
    }
    let message = MessageBuilder::new()
        .from(account.email.as_str())
        .to(to)
        .subject(subject)
        .text_body(body)
        .write_to_vec()
        .map_err(|e| ("config".to_owned(), e.to_string()))?;
    let run = || -> Result<(), pop3_client::smtp::SmtpError> {
        let mut client = SmtpClient::connect(&config)?;
        client.login(&credentials)?;
        client.send(&account.email, &[to], message.as_slice())?;
        // Accepted: a failed goodbye changes nothing.
        let _ = client.quit();
        Ok(())
    };
    run().map_err(|e| (e.kind().as_str().to_owned(), e.to_string()))
}
