//! LIST and UIDL listings, parsed in batches.
//!
//! A listing of 100,000 messages is the one answer where a per-line cost
//! adds up, so the session parses as many entries as the input holds in one
//! call and hands them out together ([`Event::ListEntries`],
//! [`Event::UidlEntries`]).
//!
//! How: a bitmap marks every byte that can be neither part of a number nor
//! of a UID: those below 0x21 and DEL ([`is_uid_byte`]'s
//! complement). In the exact form every server sends, `digits SP token CRLF`,
//! the marked bytes are the SP, the CR and the LF. Each line's fields then
//! come from three bit positions, and where the next line starts does not
//! wait on parsing this one, so lines are parsed independently instead of in
//! one long chain of dependent loads. The first line not in the exact form
//! (the terminating `.`, extra blanks, a number of more than eight digits, an
//! error) ends the batch; the session parses that line alone with the
//! grammar in `parse`, which remains the definition. A property test checks
//! that both agree.
//!
//! [`Event::ListEntries`]: crate::Event::ListEntries
//! [`Event::UidlEntries`]: crate::Event::UidlEntries
//! [`is_uid_byte`]: crate::is_uid_byte

use std::fmt;

use crate::types::{ListEntry, MsgNum, UidlEntry};

/// At most this many bytes are parsed per batch, which bounds the session's
/// scratch memory (a bitmap and the entries) whatever the driver feeds it.
pub(crate) const WINDOW: usize = 16 * 1024;

/// Where one UIDL entry lies in the batch's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UidSpan {
    msg: MsgNum,
    start: usize,
    len: usize,
}

impl UidSpan {
    fn entry<'a>(&self, input: &'a [u8]) -> Option<UidlEntry<'a>> {
        let uid = input.get(self.start..self.start + self.len)?;
        Some(UidlEntry { msg: self.msg, uid })
    }
}

/// The session's reusable buffers for listings.
#[derive(Clone, Default)]
pub(crate) struct Scratch {
    /// One bit per input byte: set for bytes outside numbers and UIDs.
    separators: Vec<u64>,
    pub(crate) uids: Vec<UidSpan>,
    pub(crate) sizes: Vec<ListEntry>,
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scratch").finish_non_exhaustive()
    }
}

impl Scratch {
    /// Parses the exact-form UIDL entries at the start of `input` into
    /// `self.uids`; returns the bytes they span (0 if the first line is not
    /// complete or not in the exact form).
    pub(crate) fn uidl(&mut self, input: &[u8], max_uid: usize, max_line: usize) -> usize {
        self.uids.clear();
        let window = &input[..input.len().min(WINDOW)];
        let mut lines = ExactLines::new(window, &mut self.separators, max_line);
        while let Some(line) = lines.next() {
            let uid_len = line.token.len();
            let entry = match message_number(window, line.number) {
                Some(msg) if uid_len <= max_uid => UidSpan {
                    msg,
                    start: line.token.start,
                    len: uid_len,
                },
                _ => return line.start,
            };
            self.uids.push(entry);
        }
        lines.start
    }

    /// Parses the exact-form LIST entries at the start of `input` into
    /// `self.sizes`; returns the bytes they span.
    pub(crate) fn list(&mut self, input: &[u8], max_line: usize) -> usize {
        self.sizes.clear();
        let window = &input[..input.len().min(WINDOW)];
        let mut lines = ExactLines::new(window, &mut self.separators, max_line);
        while let Some(line) = lines.next() {
            let msg = message_number(window, line.number);
            let octets = decimal(window, line.token, 19);
            let (Some(msg), Some(octets)) = (msg, octets) else {
                return line.start;
            };
            self.sizes.push(ListEntry { msg, octets });
        }
        lines.start
    }

    /// Makes a batch of one LIST entry the grammar parsed.
    pub(crate) fn single_size(&mut self, entry: ListEntry) {
        self.sizes.clear();
        self.sizes.push(entry);
    }

    /// Makes a batch of one UIDL entry the grammar parsed; the batch's input is
    /// then the UID itself.
    pub(crate) fn single_uid(&mut self, entry: UidlEntry<'_>) {
        self.uids.clear();
        self.uids.push(UidSpan {
            msg: entry.msg,
            start: 0,
            len: entry.uid.len(),
        });
    }
}

/// Appends to `bits` a word for every 64 bytes of `bytes` (the last one
/// possibly shorter), with a bit set for every byte below 0x21 or equal to
/// 0x7f. Written as two simple loops over 64-byte blocks (classify, then
/// gather eight flags per multiply) that the compiler vectorizes.
fn mark_separators(bytes: &[u8], bits: &mut Vec<u64>) {
    let mut blocks = bytes.chunks_exact(64);
    for block in blocks.by_ref() {
        let mut flags = [0u8; 64];
        for (flag, &byte) in flags.iter_mut().zip(block) {
            *flag = u8::from(is_separator(byte));
        }
        let mut word = 0u64;
        for (k, eight) in flags.chunks_exact(8).enumerate() {
            word |= gather_flags(eight) << (8 * k);
        }
        bits.push(word);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let word = tail.iter().enumerate().fold(0, |word, (i, &byte)| {
            word | u64::from(is_separator(byte)) << i
        });
        bits.push(word);
    }
}

#[inline(always)]
fn is_separator(byte: u8) -> bool {
    byte < 0x21 || byte == 0x7f
}

/// Eight bytes that are each 0 or 1, as the low eight bits of a number
/// (the first byte in bit 0): one multiply moves each byte's bit into the
/// top byte, where no carries interfere.
#[inline(always)]
fn gather_flags(eight: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(eight);
    u64::from_le_bytes(word).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Bytes marked before the first line is parsed; then the marks double as
/// the walk needs them. A batch that stops early (a line in another form,
/// so once per such line) thus costs marking about the bytes it covered,
/// never the whole window.
const FIRST_MARKED: usize = 256;

/// The positions of a window's separators, in order.
struct Separators<'a> {
    window: &'a [u8],
    /// The marks so far, one word per 64 bytes.
    bits: &'a mut Vec<u64>,
    index: usize,
    current: u64,
}

impl<'a> Separators<'a> {
    fn new(window: &'a [u8], bits: &'a mut Vec<u64>) -> Self {
        bits.clear();
        mark_separators(&window[..window.len().min(FIRST_MARKED)], bits);
        let current = bits.first().copied().unwrap_or(0);
        Self {
            window,
            bits,
            index: 0,
            current,
        }
    }

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while self.current == 0 {
            self.index += 1;
            if self.index >= self.bits.len() {
                let marked = self.bits.len() * 64;
                if marked >= self.window.len() {
                    return None;
                }
                // Twice as much as so far: marking stays within about
                // twice what the batch gets through, however it ends.
                let more = &self.window[marked..self.window.len().min(2 * marked)];
                mark_separators(more, self.bits);
            }
            self.current = *self.bits.get(self.index)?;
        }
        let bit = self.current.trailing_zeros() as usize;
        self.current &= self.current - 1;
        Some(self.index * 64 + bit)
    }
}

/// A line `number SP token (CR) LF`, as byte ranges of the window.
struct ExactLine {
    start: usize,
    number: std::ops::Range<usize>,
    token: std::ops::Range<usize>,
}

/// Walks the exact-form lines of a window; stops at the first line that is
/// incomplete or in another form, leaving `start` there.
struct ExactLines<'a> {
    window: &'a [u8],
    separators: Separators<'a>,
    max_line: usize,
    /// Where the next line starts.
    start: usize,
}

impl<'a> ExactLines<'a> {
    fn new(window: &'a [u8], bits: &'a mut Vec<u64>, max_line: usize) -> Self {
        Self {
            window,
            separators: Separators::new(window, bits),
            max_line,
            start: 0,
        }
    }

    #[inline(always)]
    fn next(&mut self) -> Option<ExactLine> {
        let start = self.start;
        let space = self.separators.next()?;
        let end = self.separators.next()?;
        if space == start || self.window.get(space) != Some(&b' ') || end == space + 1 {
            return None;
        }
        let next = match self.window.get(end) {
            Some(b'\n') => end + 1,
            Some(b'\r') => {
                let lf = self.separators.next()?;
                if lf != end + 1 || self.window.get(lf) != Some(&b'\n') {
                    return None;
                }
                lf + 1
            }
            _ => return None,
        };
        if next - start > self.max_line {
            return None;
        }
        self.start = next;
        Some(ExactLine {
            start,
            number: start..space,
            token: space + 1..end,
        })
    }
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);

/// A message number of one to eight digits (leading zeros allowed, as the
/// grammar allows them), not zero. Longer numbers go to the grammar.
#[inline(always)]
fn message_number(window: &[u8], digits: std::ops::Range<usize>) -> Option<MsgNum> {
    let n = digits.len();
    if n > 8 {
        return None;
    }
    let value = eight_digits(window, digits.start, n)?;
    MsgNum::new(value as u32)
}

/// A decimal of 1..=`max_digits` digits: eight at a time, then the rest.
#[inline(always)]
fn decimal(window: &[u8], digits: std::ops::Range<usize>, max_digits: usize) -> Option<u64> {
    let n = digits.len();
    if n > max_digits {
        return None;
    }
    if n <= 8 {
        return eight_digits(window, digits.start, n);
    }
    let high = eight_digits(window, digits.start, 8)?;
    let low = decimal(window, digits.start + 8..digits.end, max_digits - 8)?;
    let scale = 10u64.checked_pow((n - 8) as u32)?;
    high.checked_mul(scale)?.checked_add(low)
}

/// The value of the `n` (1..=8) digits at `at`, or `None` if one is not a
/// digit. All eight bytes are checked and converted at once (SWAR): XOR with
/// '0' maps digits to 0..=9, and a byte is a digit exactly when neither it
/// nor its low nibble plus 6 reaches 0x10.
#[inline(always)]
fn eight_digits(window: &[u8], at: usize, n: usize) -> Option<u64> {
    if n == 0 || n > 8 {
        return None;
    }
    let word = word_at(window, at) ^ (ONES * b'0' as u64);
    let wanted = u64::MAX >> (8 * (8 - n));
    let not_digit = (word | ((word & (ONES * 0x0f)) + ONES * 0x06)) & (ONES * 0xf0) & wanted;
    if not_digit != 0 {
        return None;
    }
    // Digits to the top bytes (the first one lowest), zeros before them;
    // then pairs, quads and octets are combined by three multiplies.
    let x = (word & wanted) << (8 * (8 - n));
    let x = x.wrapping_mul(1 + (10 << 8)) >> 8;
    let x = (x & 0x00ff_00ff_00ff_00ff).wrapping_mul(1 + (100 << 16)) >> 16;
    let x = (x & 0x0000_ffff_0000_ffff).wrapping_mul(1 + (10_000 << 32)) >> 32;
    Some(x)
}

/// Eight bytes from `at` (little-endian), zero-padded past the window's end.
#[inline(always)]
fn word_at(window: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    match window.get(at..at + 8) {
        Some(eight) => word.copy_from_slice(eight),
        None => {
            let tail = window.get(at..).unwrap_or_default();
            word[..tail.len()].copy_from_slice(tail);
        }
    }
    u64::from_le_bytes(word)
}

/// Entries of a UIDL listing, as many as arrived complete: iterate them for
/// [`UidlEntry`] values that borrow the input.
///
/// ```
/// use pop3_proto::{ClientSession, Command, Event};
/// # let mut session = ClientSession::default();
/// # session.advance(b"+OK\r\n")?;
/// # session.send(&Command::User("u"))?;
/// # session.advance(b"+OK\r\n")?;
/// # session.send(&Command::Pass("p"))?;
/// # session.advance(b"+OK\r\n")?;
/// session.send(&Command::Uidl(None))?;
/// let input = b"+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n";
/// let (n, _reply) = session.advance(input)?;
/// let (_, event) = session.advance(&input[n..])?;
/// let Event::UidlEntries(entries) = event else { panic!("{event:?}") };
/// let uids: Vec<(u32, &[u8])> = entries.iter().map(|e| (e.msg.get(), e.uid)).collect();
/// assert_eq!(uids, [(1, &b"whqtswO00WBw418f9t5JxYwZ"[..]), (2, &b"QhdPYR:00WBw1Ph7x7"[..])]);
/// # Ok::<(), pop3_proto::SessionError>(())
/// ```
#[derive(Clone, Copy)]
pub struct UidlEntries<'a> {
    input: &'a [u8],
    spans: &'a [UidSpan],
}

impl<'a> UidlEntries<'a> {
    pub(crate) fn new(input: &'a [u8], spans: &'a [UidSpan]) -> Self {
        Self { input, spans }
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The entry at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<UidlEntry<'a>> {
        self.spans.get(index)?.entry(self.input)
    }

    /// The entries, in the order the server sent them.
    pub fn iter(&self) -> UidlIter<'a> {
        UidlIter {
            input: self.input,
            spans: self.spans.iter(),
        }
    }
}

impl<'a> IntoIterator for UidlEntries<'a> {
    type Item = UidlEntry<'a>;
    type IntoIter = UidlIter<'a>;

    fn into_iter(self) -> UidlIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for UidlEntries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for UidlEntries<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for UidlEntries<'_> {}

/// Iterator over [`UidlEntries`].
#[derive(Debug, Clone)]
pub struct UidlIter<'a> {
    input: &'a [u8],
    spans: std::slice::Iter<'a, UidSpan>,
}

impl<'a> Iterator for UidlIter<'a> {
    type Item = UidlEntry<'a>;

    #[inline]
    fn next(&mut self) -> Option<UidlEntry<'a>> {
        self.spans.next()?.entry(self.input)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.spans.len()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::frame::next_line;
    use crate::parse;
    use proptest::prelude::*;

    /// The definition: line by line, with the grammar. Returns the entries
    /// of the complete lines before the first line that fails or ends the
    /// listing.
    fn reference_uidl(input: &[u8], max_uid: usize, max_line: usize) -> Vec<(u32, Vec<u8>)> {
        let mut entries = Vec::new();
        let mut rest = input;
        while let Ok(Some((line, n))) = next_line(rest, max_line) {
            if line.first() == Some(&b'.') {
                break;
            }
            match parse::uidl_entry(line, max_uid) {
                Ok(e) => entries.push((e.msg.get(), e.uid.to_vec())),
                Err(_) => break,
            }
            rest = &rest[n..];
        }
        entries
    }

    fn reference_list(input: &[u8], max_line: usize) -> Vec<ListEntry> {
        let mut entries = Vec::new();
        let mut rest = input;
        while let Ok(Some((line, n))) = next_line(rest, max_line) {
            if line.first() == Some(&b'.') {
                break;
            }
            match parse::list_entry(line) {
                Ok(e) => entries.push(e),
                Err(_) => break,
            }
            rest = &rest[n..];
        }
        entries
    }

    /// Lines mostly in the exact form, with the variations servers and
    /// attackers produce mixed in.
    fn listing_line() -> impl Strategy<Value = Vec<u8>> {
        let number = prop_oneof![
            8 => (1u64..100_000).prop_map(|n| n.to_string()),
            1 => (0u64..=u64::MAX).prop_map(|n| n.to_string()),
            1 => "0{0,3}[0-9]{1,12}",
        ];
        let token = prop_oneof![
            4 => "[!-~]{1,40}",
            4 => "[0-9]{1,21}",
            1 => proptest::collection::vec(any::<u8>(), 0..12)
                .prop_map(|v| String::from_utf8_lossy(&v).into_owned()),
        ];
        let sep = prop_oneof![8 => Just(" "), 1 => Just("  "), 1 => Just("\t"), 1 => Just(" \t")];
        let end = prop_oneof![
            8 => Just("\r\n"),
            2 => Just("\n"),
            1 => Just(" \r\n"),
            1 => Just("\r\r\n"),
            1 => Just("\r"),
        ];
        (number, sep, token, end, any::<u8>()).prop_map(|(n, s, t, e, noise)| {
            let mut line = format!("{n}{s}{t}{e}").into_bytes();
            match noise % 64 {
                0 => line.insert(0, b' '),
                1 => line.insert(0, b'.'),
                2 => line = b".\r\n".to_vec(),
                3 => {
                    let at = usize::from(noise) % line.len();
                    line.insert(at, noise);
                }
                _ => {}
            }
            line
        })
    }

    proptest! {
        #[test]
        fn uidl_batches_agree_with_the_grammar(
            lines in proptest::collection::vec(listing_line(), 0..40),
            max_uid in prop_oneof![Just(70usize), Just(512), 1usize..20],
            max_line in prop_oneof![Just(8192usize), 4usize..60],
        ) {
            let input = lines.concat();
            let reference = reference_uidl(&input, max_uid, max_line);
            let mut scratch = Scratch::default();
            let used = scratch.uidl(&input, max_uid, max_line);
            let batch = UidlEntries::new(&input, &scratch.uids);
            let got: Vec<(u32, Vec<u8>)> =
                batch.iter().map(|e| (e.msg.get(), e.uid.to_vec())).collect();
            // The batch is a prefix of what the grammar reads, and ends at a
            // line boundary the grammar reaches too.
            prop_assert!(got.len() <= reference.len());
            prop_assert_eq!(&got[..], &reference[..got.len()]);
            prop_assert_eq!(reference_uidl(&input[..used], max_uid, max_line), got);
        }

        #[test]
        fn list_batches_agree_with_the_grammar(
            lines in proptest::collection::vec(listing_line(), 0..40),
            max_line in prop_oneof![Just(8192usize), 4usize..60],
        ) {
            let input = lines.concat();
            let reference = reference_list(&input, max_line);
            let mut scratch = Scratch::default();
            let used = scratch.list(&input, max_line);
            prop_assert!(scratch.sizes.len() <= reference.len());
            prop_assert_eq!(&scratch.sizes[..], &reference[..scratch.sizes.len()]);
            prop_assert_eq!(reference_list(&input[..used], max_line), scratch.sizes.clone());
        }

        #[test]
        fn swar_digits_agree_with_the_scalar_rule(text in "[0-9]{0,20}|[0-9/:a ]{0,10}", pad in 0usize..9) {
            let mut bytes = text.clone().into_bytes();
            let n = bytes.len();
            bytes.extend(std::iter::repeat_n(b'x', pad));
            let expected = if n == 0 || n > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                text.parse::<u64>().ok()
            };
            prop_assert_eq!(decimal(&bytes, 0..n, 19), expected);
        }

        #[test]
        fn separators_are_exactly_the_bytes_outside_numbers_and_uids(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            let mut bits = vec![u64::MAX]; // stale marks must not leak in
            let mut separators = Separators::new(&bytes, &mut bits);
            let mut found = Vec::new();
            while let Some(at) = separators.next() {
                found.push(at);
            }
            let expected: Vec<usize> = (0..bytes.len()).filter(|&i| is_separator(bytes[i])).collect();
            prop_assert_eq!(found, expected);
        }
    }

    #[test]
    fn limits_are_those_of_the_line_by_line_path() {
        let line = b"12 abcdef\r\n"; // 11 bytes
        let mut scratch = Scratch::default();
        assert_eq!(scratch.uidl(line, 70, 11), 11);
        assert_eq!(scratch.uidl(line, 70, 10), 0, "a line over max_line");
        assert_eq!(scratch.uidl(line, 6, 8192), 11);
        assert_eq!(scratch.uidl(line, 5, 8192), 0, "a UID over max_uid");
        assert_eq!(scratch.list(b"12 345\r\n", 8), 8);
        assert_eq!(scratch.list(b"12 345\r\n", 7), 0);
        // Message numbers: eight digits here, more through the grammar.
        assert_eq!(scratch.uidl(b"99999999 a\n", 70, 8192), 11);
        assert_eq!(scratch.uidl(b"123456789 a\n", 70, 8192), 0);
        assert_eq!(scratch.uidl(b"0 a\n", 70, 8192), 0);
    }

    #[test]
    fn a_long_listing_spans_windows_and_stops_at_the_terminator() {
        let mut input = Vec::new();
        for i in 1..=2000u32 {
            input.extend_from_slice(format!("{i} uid-{i:08}\r\n").as_bytes());
        }
        input.extend_from_slice(b".\r\n");
        let mut scratch = Scratch::default();
        let mut rest = &input[..];
        let mut seen = 0u32;
        loop {
            let used = scratch.uidl(rest, 70, 8192);
            if used == 0 {
                break;
            }
            assert!(used <= WINDOW);
            for entry in UidlEntries::new(rest, &scratch.uids) {
                seen += 1;
                assert_eq!(entry.msg.get(), seen);
                assert_eq!(entry.uid, format!("uid-{seen:08}").as_bytes());
            }
            rest = &rest[used..];
        }
        assert_eq!(seen, 2000);
        assert_eq!(rest, b".\r\n");
    }
}
