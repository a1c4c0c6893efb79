//! Fuzzes the whole pipeline with the invariants the property tests check: output is safe
//! (per the independent checker in `tests/support`), stable under re-sanitising, and
//! streaming the input in fuzzer-chosen chunks equals rendering it whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parlo_render::{StreamRenderer, render, sanitize};

#[path = "../../tests/support/mod.rs"]
mod support;

fuzz_target!(|data: &[u8]| {
    // First byte picks the chunk size for streaming; the rest is the answer.
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let Ok(md) = std::str::from_utf8(rest) else {
        return;
    };
    let html = render(md);
    if let Err(why) = support::check_safe(&html) {
        panic!("unsafe output: {why}\ninput: {md:?}\nhtml: {html}");
    }
    assert_eq!(sanitize(&html), html, "not idempotent for {md:?}");

    let size = usize::from(chunk % 32) + 1;
    let mut stream = StreamRenderer::new();
    let mut start = 0;
    while start < md.len() {
        let mut end = (start + size).min(md.len());
        while !md.is_char_boundary(end) {
            end += 1;
        }
        stream.push(&md[start..end]);
        start = end;
    }
    stream.finish();
    assert_eq!(
        stream.html(),
        html,
        "stream differs for {md:?} in chunks of {size}"
    );
});
