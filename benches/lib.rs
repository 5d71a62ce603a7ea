//! Inputs for the benchmarks: a realistic mail corpus, listings, and the
//! wire bytes a server sends for them. Deterministic, so every run measures
//! the same bytes.

use pop3_proto::frame::DotStuffer;

/// A tiny deterministic generator (xorshift64*), so corpora are reproducible
/// without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "the",
    "message",
    "server",
    "mail",
    "delivery",
    "please",
    "find",
    "attached",
    "report",
    "quarterly",
    "numbers",
    "meeting",
    "tomorrow",
    "regards",
    "thanks",
    "invoice",
    "project",
    "update",
    "schedule",
    "review",
    "client",
    "support",
    "ticket",
    "customer",
    "order",
];

/// A mail body of about `size` bytes: 76-character lines of words, about 2%
/// of them starting with a dot, and a long line (2,000 bytes) every 500 lines.
/// CRLF line endings.
pub fn mail_corpus(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(size + 4096);
    let mut line_no = 0u64;
    while out.len() < size {
        line_no += 1;
        let target = if line_no % 500 == 0 { 2000 } else { 76 };
        let start = out.len();
        if rng.below(50) == 0 {
            out.push(b'.');
        }
        while out.len() - start < target {
            let word = WORDS[rng.below(WORDS.len() as u64) as usize];
            out.extend_from_slice(word.as_bytes());
            out.push(b' ');
        }
        out.truncate(start + target);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The bytes a server sends for `body` after `+OK`: dot-stuffed, terminated.
pub fn stuffed(body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(body.len() + body.len() / 40 + 8);
    let mut stuffer = DotStuffer::new();
    stuffer.push(body, &mut wire);
    stuffer.finish(&mut wire);
    wire
}

/// A UIDL listing of `n` entries (status line included), with UIDs shaped
/// like Dovecot's and Gmail's.
pub fn uidl_listing(n: u32) -> Vec<u8> {
    let mut rng = Rng::new(7);
    let mut wire = b"+OK unique-id listing follows\r\n".to_vec();
    for i in 1..=n {
        let uid = format!(
            "GmailId{:016x}{:08x}",
            rng.next_u64(),
            rng.below(u64::from(u32::MAX))
        );
        wire.extend_from_slice(format!("{i} {uid}\r\n").as_bytes());
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

/// A LIST listing of `n` entries (status line included).
pub fn list_listing(n: u32) -> Vec<u8> {
    let mut rng = Rng::new(11);
    let mut wire = b"+OK scan listing follows\r\n".to_vec();
    for i in 1..=n {
        wire.extend_from_slice(format!("{i} {}\r\n", 1000 + rng.below(5_000_000)).as_bytes());
    }
    wire.extend_from_slice(b".\r\n");
    wire
}
