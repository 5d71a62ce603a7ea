//! Test helpers: feed a session server bytes and record its events as text.

#![allow(dead_code)]

use pop3_proto::{escape::Escaped, ClientSession, Event, Payload, SessionError};

/// One event, described compactly so tests can compare lists of them; a
/// batch of listing entries gives one text per entry.
pub(crate) fn describe_all(event: &Event<'_>) -> Vec<String> {
    match event {
        Event::ListEntries(entries) => entries
            .iter()
            .map(|l| format!("list {} {}", l.msg, l.octets))
            .collect(),
        Event::UidlEntries(entries) => entries
            .iter()
            .map(|u| format!("uid {} {}", u.msg, Escaped(u.uid)))
            .collect(),
        other => vec![describe(other)],
    }
}

/// One event, described compactly so tests can compare lists of them.
pub(crate) fn describe(event: &Event<'_>) -> String {
    match event {
        Event::NeedInput => "need-input".into(),
        Event::Greeting(g) => format!(
            "greeting {:?} stamp={}",
            g.status,
            g.apop_timestamp.as_deref().unwrap_or("-")
        ),
        Event::Reply(r) => {
            let code = r.code.as_ref().map(|c| format!(" {c}")).unwrap_or_default();
            let payload = match r.payload {
                Payload::None => String::new(),
                Payload::Stat(s) => format!(" stat={}/{}", s.count, s.octets),
                Payload::Listing(l) => format!(" list={}/{}", l.msg, l.octets),
                Payload::UniqueId(u) => format!(" uid={}/{}", u.msg, Escaped(u.uid)),
            };
            format!("{} {:?}{code}{payload}", r.command.name(), r.status)
        }
        Event::Capability(c) => format!("cap {c:?}"),
        Event::ListEntries(e) => format!("list-entries {}", e.len()),
        Event::UidlEntries(e) => format!("uidl-entries {}", e.len()),
        Event::Language(l) => format!("lang {}", Escaped(l)),
        Event::Body(b) => format!("body {}", Escaped(b)),
        Event::End(k) => format!("end {}", k.name()),
    }
}

/// Feeds `input` to the session until it needs more; returns the events
/// (body chunks merged) and how much input was used.
pub(crate) fn feed(
    session: &mut ClientSession,
    input: &[u8],
) -> Result<(Vec<String>, usize), SessionError> {
    let mut events: Vec<String> = Vec::new();
    let mut used = 0;
    loop {
        let (n, event) = session.advance(&input[used..])?;
        used += n;
        if let Event::NeedInput = event {
            return Ok((events, used));
        }
        for text in describe_all(&event) {
            match (events.last_mut(), text.strip_prefix("body ")) {
                (Some(last), Some(more)) if last.starts_with("body ") => last.push_str(more),
                _ => events.push(text),
            }
        }
    }
}

/// Takes and clears what the session wants to write.
pub(crate) fn written(session: &mut ClientSession) -> String {
    let out = String::from_utf8_lossy(session.output()).into_owned();
    session.clear_output();
    out
}
