//! Render time of a long answer with many formulas: whole, streamed in 20-byte chunks
//! through `StreamRenderer`, and (for contrast) naively re-rendered whole per chunk.
//! Plain `harness = false` bench: `cargo bench -p parlo-render --bench render`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use parlo_render::{MathRenderer, SourceMath, StreamRenderer, default_renderer, render_with};

/// A ~8 KB answer in the shape an assistant writes: headings, prose with inline formulas,
/// display formulas, a list, a table and a code block.
fn long_answer() -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 8 * 1024 {
        i += 1;
        s.push_str(&format!(
            "## Step {i}: the quadratic case\n\n\
             For $a \\neq 0$ the roots of $ax^2 + bx + c = 0$ are given by\n\n\
             $$x_{{1,2}} = \\frac{{-b \\pm \\sqrt{{b^2 - 4ac}}}}{{2a}}$$\n\n\
             With the discriminant \\(\\Delta = b^2 - 4ac\\) we get **three cases**:\n\n\
             1. $\\Delta > 0$: two real roots,\n\
             2. $\\Delta = 0$: one double root $x = -\\tfrac{{b}}{{2a}}$,\n\
             3. $\\Delta < 0$: two complex roots $x = \\alpha \\pm i\\beta$.\n\n\
             | $n$ | $\\sum_{{k=1}}^n k^2$ |\n|---:|---:|\n| {i} | $\\frac{{n(n+1)(2n+1)}}{{6}}$ |\n\n\
             \\[\\int_0^\\infty e^{{-x^2}}\\,dx = \\frac{{\\sqrt{{\\pi}}}}{{2}}\\]\n\n\
             ```python\nimport math\nprint(math.sqrt({i}))\n```\n\n"
        ));
    }
    s
}

fn time<R>(iterations: u32, mut f: impl FnMut() -> R) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..iterations {
        let start = Instant::now();
        black_box(f());
        best = best.min(start.elapsed());
    }
    best
}

fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

fn stream(parts: &[&str], math: impl Fn() -> Box<dyn MathRenderer>) -> (String, Duration) {
    let mut s = StreamRenderer::with_math(math());
    let mut worst = Duration::ZERO;
    for part in parts {
        let start = Instant::now();
        s.push(part);
        black_box(s.tail_html());
        worst = worst.max(start.elapsed());
    }
    s.finish();
    (s.html(), worst)
}

fn main() {
    let text = long_answer();
    let parts = chunks(&text, 20);
    let katex = default_renderer();
    let formulas =
        text.matches("$").count() / 2 + text.matches("\\(").count() + text.matches("\\[").count();
    println!(
        "answer: {} bytes, {formulas} formulas, {} chunks of 20 bytes",
        text.len(),
        parts.len()
    );

    let runs = 20;
    let whole = time(runs, || render_with(&text, katex.as_ref()));
    println!("whole, katex:                  {:>9.2?}", whole);

    let (streamed_html, _) = stream(&parts, default_renderer);
    assert_eq!(streamed_html, render_with(&text, katex.as_ref()));
    let streamed = time(runs, || stream(&parts, default_renderer).0);
    let (_, worst_push) = stream(&parts, default_renderer);
    println!(
        "streamed, katex:               {:>9.2?} total, {:>7.2?} per chunk on average, {:>7.2?} slowest chunk",
        streamed,
        streamed / parts.len() as u32,
        worst_push
    );

    let whole_src = time(runs, || render_with(&text, &SourceMath));
    println!("whole, no math module:         {:>9.2?}", whole_src);
    let streamed_src = time(runs, || {
        stream(&parts, || Box::new(SourceMath) as Box<dyn MathRenderer>).0
    });
    println!(
        "streamed, no math module:      {:>9.2?} total, {:>7.2?} per chunk on average",
        streamed_src,
        streamed_src / parts.len() as u32
    );

    let naive = time(3, || {
        let mut shown = String::new();
        for end in 1..=parts.len() {
            let prefix_len: usize = parts[..end].iter().map(|p| p.len()).sum();
            shown = render_with(&text[..prefix_len], katex.as_ref());
        }
        shown
    });
    println!(
        "naive re-render per chunk:     {:>9.2?} total (what StreamRenderer avoids)",
        naive
    );
}
