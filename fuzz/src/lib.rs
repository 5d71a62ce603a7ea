//! Helpers shared by the fuzz targets.

use pop3_proto::{ClientSession, Event, SessionError};

/// Splits fuzz input into chunk lengths (from the first byte's count of the
/// following bytes) and the payload, so every target also explores how the
/// input is cut into reads.
pub fn cuts(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = usize::from(n % 8).min(rest.len());
    let cuts = rest[..n].iter().map(|&b| usize::from(b) + 1).collect();
    (cuts, &rest[n..])
}

/// Feeds `input` to `session` in reads of the given sizes (the rest in one
/// read), as a driver would: keeping unused bytes, dropping used ones.
/// Checks the driver never has to hold more than one protocol line.
/// Returns the events seen (described) or the session's error.
pub fn drive(
    session: &mut ClientSession,
    input: &[u8],
    cuts: &[usize],
) -> Result<Vec<String>, SessionError> {
    let max_line = session.config().max_line;
    let mut events = Vec::new();
    let mut buffer: Vec<u8> = Vec::new();
    let mut rest = input;
    let mut sizes = cuts.iter().copied().chain(std::iter::once(usize::MAX));
    while !rest.is_empty() {
        let take = sizes.next().unwrap_or(usize::MAX).min(rest.len());
        buffer.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        let mut used = 0;
        loop {
            let (n, event) = session.advance(&buffer[used..])?;
            used += n;
            match event {
                Event::NeedInput => break,
                Event::Body(chunk) => {
                    assert!(!chunk.is_empty(), "empty body chunk");
                    events.push(format!("body {}", chunk.len()));
                }
                // One text per entry, so that how the input was cut into
                // reads (which decides the batches) does not show.
                Event::UidlEntries(entries) => {
                    assert!(!entries.is_empty(), "empty UIDL batch");
                    events.extend(entries.iter().map(|e| format!("{e:?}")));
                }
                Event::ListEntries(entries) => {
                    assert!(!entries.is_empty(), "empty LIST batch");
                    events.extend(entries.iter().map(|e| format!("{e:?}")));
                }
                other => events.push(format!("{other:?}")),
            }
        }
        buffer.drain(..used);
        assert!(
            buffer.len() < max_line,
            "the driver had to buffer {} bytes",
            buffer.len()
        );
    }
    Ok(events)
}
