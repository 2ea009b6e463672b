//! Cost per delta of a reply's markdown as it streams: the time to render a
//! message again after appending one token, at 1 KB, 10 KB and 100 KB, for
//! the incremental renderer the chat uses (`StreamedMarkdown`: the open
//! block is parsed, rendered and wrapped again) and, for comparison, a whole
//! render (`markdown::to_text` and wrapping every line). The incremental
//! figure must stay flat as the message grows; the whole one grows with it.
//! A plain `harness = false` bench: `cargo bench --bench stream` (or
//! `cargo bench --profile dev --bench stream` for a debug-build run).
//! Figures are medians; compare ratios within one run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use loreweave::ui::Theme;
use loreweave::ui::markdown::{StreamedMarkdown, to_text, wrapped_rows};

/// A model's answer: headings, paragraphs with emphasis and citations,
/// lists, a quote and a code block, about 600 bytes a round.
const ROUND: &str = "## The waystone\n\nThe *shattered* waystone lies north of the ford [1]. \
Wardens keep a **watch** there since the toll war, and a [map](https://example.org/map) \
shows the path.\n\n- the cairn wardens [2]\n- the glasshounds\n  - nested note\n\n\
> From the lore: the lamp beneath the mere still burns [3].\n\n```\nroll 2d6 + 1\n\non 10+: the wardens arrive\n```\n\n";

/// The deltas: the same answer again, cut into tokens of about 4 bytes.
fn tokens() -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut rest = ROUND;
    while !rest.is_empty() {
        let mut at = 4.min(rest.len());
        while !rest.is_char_boundary(at) {
            at += 1;
        }
        out.push(&rest[..at]);
        rest = &rest[at..];
    }
    out
}

const WIDTH: u16 = 70;

fn message(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + ROUND.len());
    while text.len() < bytes {
        text.push_str(ROUND);
    }
    text
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let deltas = if full { 4_000 } else { 50 };
    let theme = Theme::plain();
    let tokens = tokens();
    let mut token = tokens.iter().cycle();
    println!(
        "cost per delta ({deltas} tokens of ~4 bytes appended, wrapped at {WIDTH} columns; median and 99th percentile)"
    );
    println!(
        "{:>10} {:>14} {:>14} {:>14}",
        "message", "incremental", "p99", "whole render"
    );
    for size in [1_000, 10_000, 100_000] {
        let mut text = message(size);
        let mut streamed = StreamedMarkdown::new();
        streamed.update(&text, &theme);
        black_box(streamed.rows(WIDTH));
        let mut incremental = Vec::with_capacity(deltas);
        for _ in 0..deltas {
            text.push_str(token.next().copied().unwrap_or(" "));
            let start = Instant::now();
            streamed.update(&text, &theme);
            black_box(streamed.rows(WIDTH));
            incremental.push(start.elapsed());
        }
        // A whole render per delta is slow at 100 KB: fewer samples.
        let mut whole = Vec::new();
        let mut text = message(size);
        for _ in 0..(deltas / 20).max(5) {
            text.push_str(token.next().copied().unwrap_or(" "));
            let start = Instant::now();
            let lines = to_text(&text, &theme).lines;
            black_box(wrapped_rows(&lines, WIDTH));
            whole.push(start.elapsed());
        }
        let mut sorted = incremental.clone();
        sorted.sort();
        let p99 = sorted[sorted.len() * 99 / 100];
        println!(
            "{:>8} B {:>11.1} µs {:>11.1} µs {:>11.1} µs",
            size,
            median(incremental).as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            median(whole).as_secs_f64() * 1e6,
        );
    }
}
