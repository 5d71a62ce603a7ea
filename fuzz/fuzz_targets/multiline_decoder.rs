//! The multi-line decoder: decoding in one shot equals decoding the same
//! bytes in arbitrary chunk splits, and it consumes the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_proto::frame::BodyDecoder;

fn decode(input: &[u8], cuts: &[usize]) -> (Vec<u8>, usize, bool) {
    let mut decoder = BodyDecoder::new();
    let mut out = Vec::new();
    let mut used = 0;
    let mut fed = 0;
    let mut sizes = cuts.iter().copied().chain(std::iter::once(usize::MAX));
    while fed < input.len() {
        fed = fed
            .saturating_add(sizes.next().unwrap_or(usize::MAX))
            .min(input.len());
        let (n, done) = decoder
            .decode_into(&input[used..fed], &mut out)
            .unwrap_or_else(|e| panic!("no limit was set, yet: {e}"));
        used += n;
        assert_eq!(done, decoder.is_done());
        if done {
            return (out, used, true);
        }
        assert_eq!(used, fed, "an unfinished decoder uses all its input");
    }
    (out, used, false)
}

fuzz_target!(|data: &[u8]| {
    let (cuts, input) = pop3_fuzz::cuts(data);
    let whole = decode(input, &[]);
    let split = decode(input, &cuts);
    assert_eq!(whole, split);
    assert!(whole.0.len() <= whole.1, "unstuffing never adds bytes");
});
