//! Message summaries from the header alone (`TOP n 0`): who wrote to whom,
//! when, about what, the Message-ID and the thread it belongs to, whether a
//! machine sent it, with addresses normalised so an application can link
//! mail to its contacts. Parsing is mail-parser's (RFC 5322, encoded words
//! in every charset mail uses, ISO-2022-JP, Shift_JIS, GBK, Big5 and
//! EUC-KR included, folding, obsolete forms).
//!
//! ```
//! use pop3_client::summary::MessageSummary;
//! let header = b"From: =?utf-8?q?Jos=C3=A9?= <Jose@Example.COM>\r\nTo: a@x.org, \"B\" <b@y.org>\r\nSubject: Hi\r\nMessage-ID: <1@x>\r\n\r\n";
//! let summary = MessageSummary::parse(header);
//! assert_eq!(summary.from[0].email, "jose@example.com");
//! assert_eq!(summary.from[0].name.as_deref(), Some("José"));
//! assert_eq!(summary.to.len(), 2);
//! assert_eq!(summary.message_id.as_deref(), Some("1@x"));
//! ```

use mail_parser::{Address, MessageParser};

/// One mailbox of an address header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailAddress {
    /// The display name, decoded, if any.
    pub name: Option<String>,
    /// The address, trimmed, with the domain (and the whole address, since
    /// virtually every server treats the local part case-insensitively)
    /// in lower case: the form to match contacts on.
    pub email: String,
}

/// What an application shows and links from a message's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageSummary {
    /// `From:`.
    pub from: Vec<MailAddress>,
    /// `To:`.
    pub to: Vec<MailAddress>,
    /// `Cc:`.
    pub cc: Vec<MailAddress>,
    /// `Reply-To:`.
    pub reply_to: Vec<MailAddress>,
    /// `Date:` as seconds since the Unix epoch, if it parses.
    pub date: Option<i64>,
    /// `Subject:`, decoded.
    pub subject: Option<String>,
    /// `Message-ID:` without its angle brackets.
    pub message_id: Option<String>,
    /// `In-Reply-To:`: the Message-IDs answered, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// `References:`: the thread's Message-IDs, oldest first.
    pub references: Vec<String>,
    /// `Sender:`.
    pub sender: Vec<MailAddress>,
    /// `Delivered-To:` (the first, the last hop's), normalised as an
    /// address: which of the user's addresses the mail came to.
    pub delivered_to: Option<String>,
    /// `List-Id:` without its angle brackets: mail from a mailing list.
    pub list_id: Option<String>,
    /// `Auto-Submitted:` (`auto-replied`, `auto-generated`...): sent by a
    /// machine, not to be answered automatically (RFC 3834).
    pub auto_submitted: Option<String>,
}

impl MessageSummary {
    /// Reads a header (a whole message works too: only the header is
    /// read). Anything missing or unreadable is left empty; this never
    /// fails and never panics, whatever the bytes.
    pub fn parse(header: &[u8]) -> Self {
        let Some(message) = MessageParser::default().parse_headers(header) else {
            return Self::default();
        };
        Self {
            from: addresses(message.from()),
            to: addresses(message.to()),
            cc: addresses(message.cc()),
            reply_to: addresses(message.reply_to()),
            date: message.date().map(|d| d.to_timestamp()),
            subject: message.subject().map(str::to_owned),
            message_id: message.message_id().map(str::to_owned),
            in_reply_to: ids(message.in_reply_to()),
            references: ids(message.references()),
            sender: addresses(message.sender()),
            delivered_to: raw(&message, "Delivered-To")
                .map(|v| v.trim_matches(|c| c == '<' || c == '>').to_lowercase()),
            // `List-Id: Name <id>`: the id is what is in angle brackets.
            list_id: raw(&message, "List-Id").map(|v| match v.rsplit_once('<') {
                Some((_, id)) => id.trim_end_matches('>').trim().to_owned(),
                None => v,
            }),
            auto_submitted: raw(&message, "Auto-Submitted").map(|v| v.to_ascii_lowercase()),
        }
    }
}

/// Message-IDs of a header, without angle brackets.
fn ids(value: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    value
        .as_text_list()
        .unwrap_or_default()
        .iter()
        .map(|id| id.trim_matches(|c| c == '<' || c == '>').to_owned())
        .filter(|id| !id.is_empty())
        .collect()
}

/// A header that mail-parser leaves unparsed, trimmed; `None` if absent or
/// empty.
fn raw(message: &mail_parser::Message<'_>, name: &str) -> Option<String> {
    let value = message.header_raw(name)?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn addresses(header: Option<&Address<'_>>) -> Vec<MailAddress> {
    let Some(header) = header else {
        return Vec::new();
    };
    header
        .iter()
        .filter_map(|addr| {
            let email = addr.address.as_deref()?.trim().to_lowercase();
            if email.is_empty() {
                return None;
            }
            let name = addr
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned);
            Some(MailAddress { name, email })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn groups_folding_and_dates() {
        let header = b"From: Ann <ann@EXAMPLE.org>\r\nTo: team: x@a.org, y@b.org;\r\nCc: c@c.org\r\nReply-To: r@r.org\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\nSubject: a\r\n  folded\r\n\r\n";
        let s = MessageSummary::parse(header);
        assert_eq!(s.from[0].email, "ann@example.org");
        assert_eq!(
            s.to.iter().map(|a| a.email.as_str()).collect::<Vec<_>>(),
            ["x@a.org", "y@b.org"]
        );
        assert_eq!(s.cc.len(), 1);
        assert_eq!(s.reply_to[0].email, "r@r.org");
        assert_eq!(s.date, Some(1_796_032_800)); // 2026-11-30T10:00:00Z
        assert_eq!(s.subject.as_deref(), Some("a folded"));
    }

    #[test]
    fn threads_lists_machines_and_far_eastern_charsets() {
        let header = b"From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <yamada@example.jp>\r\nSubject: =?Shift_JIS?B?k/qWe4zq?=\r\nTo: =?GBK?B?1tDOxA==?= <a@example.cn>, =?Big5?B?pKSk5Q==?= <b@example.tw>, =?EUC-KR?B?x9Gxub7u?= <c@example.kr>\r\nIn-Reply-To: <parent@x>\r\nReferences: <root@x>\r\n <parent@x>\r\nSender: List Bot <bot@lists.example.org>\r\nDelivered-To: Me@Example.org\r\nList-Id: Team <team.lists.example.org>\r\nAuto-Submitted: Auto-Replied\r\n\r\n";
        let s = MessageSummary::parse(header);
        assert_eq!(s.from[0].name.as_deref(), Some("山田"));
        assert_eq!(s.subject.as_deref(), Some("日本語"));
        let names: Vec<&str> = s.to.iter().filter_map(|a| a.name.as_deref()).collect();
        assert_eq!(names, ["中文", "中文", "한국어"]);
        assert_eq!(s.in_reply_to, ["parent@x"]);
        assert_eq!(s.references, ["root@x", "parent@x"]);
        assert_eq!(s.sender[0].email, "bot@lists.example.org");
        assert_eq!(s.delivered_to.as_deref(), Some("me@example.org"));
        assert_eq!(s.list_id.as_deref(), Some("team.lists.example.org"));
        assert_eq!(s.auto_submitted.as_deref(), Some("auto-replied"));
    }

    proptest! {
        #[test]
        fn any_bytes_give_a_summary(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = MessageSummary::parse(&bytes);
        }
    }
}
