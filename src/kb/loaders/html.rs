//! HTML as a [`Document`]: the page's readable text, with `<h1>`-`<h6>` as
//! markdown `#` headings so that chunks get a heading trail.
//!
//! How: html2text parses the page (html5ever, the browsers' algorithm:
//! entities decoded, broken markup repaired); before rendering, elements
//! that are not content are cut from the tree (`<script>`, `<style>`,
//! `<noscript>`, `<template>`, `<nav>`, anything `hidden`, `aria-hidden` or
//! `role=navigation`, and a `<header>`/`<footer>` outside `<article>`,
//! `<main>` and `<section>`: the site's banner and footer, not an article's).
//! Comments and `<head>` are never rendered. The tree is rendered as plain
//! text without wrapping (one line per paragraph), links as their text, list
//! items as `- `/`1. `, quotes as `> `.
//!
//! Invariants:
//! - The "source text" of an HTML document is this extracted text: its
//!   lines are what [`Document::body_line`] and chunk line ranges count.
//!   The body is a contiguous run of them.
//! - Only `<h1>`-`<h6>` become headings: every other extracted line that
//!   would read as a heading or a code fence is escaped with `\`.
//! - The title is the `<title>` text, else the first `<h1>`; when the
//!   extracted text opens with an `<h1>`, that line is the title line and is
//!   left out of the body (as a markdown title line is).
//! - A page with no content (all scripts) is an empty-body document; only a
//!   parser error or panic is a [`Skip::ParserFailure`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use html2text::config::{self, Config};
use html2text::render::{TaggedLine, TextDecorator};
use html2text::{Element, Handle, RcDom};

use super::super::markdown::fallback_title;
use super::{Document, Skip, document_from_lines, escape_markup, split_lines};

/// Marks a heading prefix in the rendered text, so headings the page made
/// are told apart from text that merely starts with `#`. A private-use
/// character; any in the page itself is removed.
const HEADING_MARK: char = '\u{e000}';

/// Rendering width: wide enough that paragraphs are never wrapped.
const RENDER_WIDTH: usize = 1_000_000;

/// Elements that are never content.
const DROPPED: &[&str] = &["script", "style", "noscript", "template", "nav"];

/// Elements inside which a `<header>`/`<footer>` belongs to the content.
const CONTENT_ROOTS: &[&str] = &["article", "main", "section"];

/// Deepest element nesting parsed. html5ever's tree builder takes time
/// quadratic in the depth (each start tag scans the open elements), so a
/// pathological page of 100k nested `<div>`s would take hours; real pages
/// nest a few dozen deep.
const MAX_DEPTH: usize = 10_000;

/// Elements that never nest in practice: void, or closed by their next
/// sibling when their end tag is left out.
const NON_NESTING: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "param",
];

/// Parse an HTML page (raw bytes, any declared encoding).
pub(super) fn parse_html(source: &str, bytes: &[u8]) -> Result<Document, Skip> {
    let text = decode(bytes)?;
    if max_depth(&text) > MAX_DEPTH {
        return Err(Skip::ParserFailure(format!(
            "HTML nested more than {MAX_DEPTH} elements deep"
        )));
    }
    let rendered = catch_unwind(AssertUnwindSafe(|| render(&text)))
        .map_err(|_| Skip::ParserFailure("the HTML parser panicked".to_owned()))??;
    let (title_tag, rendered) = rendered;

    let mut first_h1: Option<(usize, String)> = None;
    let lines: Vec<String> = split_lines(&rendered)
        .into_iter()
        .enumerate()
        .map(|(at, line)| {
            let line = line.trim_end();
            let indent = line.len() - line.trim_start().len();
            let is_heading = line[indent..].starts_with(HEADING_MARK);
            let clean: String = line.chars().filter(|&c| c != HEADING_MARK).collect();
            if !is_heading {
                return escape_markup(&clean);
            }
            let heading = clean.trim_start().to_owned();
            if first_h1.is_none()
                && let Some(text) = heading.strip_prefix("# ")
            {
                first_h1 = Some((at, text.trim().to_owned()));
            }
            heading
        })
        .collect();

    let first_line = lines.iter().position(|line| !line.trim().is_empty());
    let title_line = first_h1
        .as_ref()
        .map(|(at, _)| *at)
        .filter(|at| Some(*at) == first_line);
    let title = title_tag
        .filter(|title| !title.is_empty())
        .or_else(|| first_h1.map(|(_, text)| text).filter(|t| !t.is_empty()))
        .unwrap_or_else(|| fallback_title(source));
    Ok(document_from_lines(source, title, &lines, title_line))
}

/// An upper estimate of how deep the page's elements nest: start tags
/// minus end tags, skipping comments, the contents of `<script>` and
/// `<style>`, self-closing and [`NON_NESTING`] tags.
fn max_depth(html: &str) -> usize {
    let bytes = html.as_bytes();
    let lower = html.to_ascii_lowercase();
    let (mut at, mut depth, mut max) = (0, 0usize, 0);
    while let Some(found) = memchr_lt(bytes, at) {
        at = found + 1;
        let rest = &lower[at..];
        if rest.starts_with("!--") {
            at = rest.find("-->").map_or(bytes.len(), |end| at + end + 3);
            continue;
        }
        let closing = rest.starts_with('/');
        let name_start = at + usize::from(closing);
        let name_len = lower[name_start..]
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .count();
        if name_len == 0 || !bytes[name_start].is_ascii_alphabetic() {
            continue;
        }
        let name = &lower[name_start..name_start + name_len];
        let tag_end = lower[name_start..].find('>').map(|end| name_start + end);
        if closing {
            depth = depth.saturating_sub(usize::from(!NON_NESTING.contains(&name)));
            continue;
        }
        if matches!(name, "script" | "style") {
            let close = format!("</{name}");
            at = lower[name_start..]
                .find(&close)
                .map_or(bytes.len(), |end| name_start + end);
            continue;
        }
        let self_closing = tag_end.is_some_and(|end| lower[..end].ends_with('/'));
        if !self_closing && !NON_NESTING.contains(&name) {
            depth += 1;
            max = max.max(depth);
        }
    }
    max
}

fn memchr_lt(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == b'<')
        .map(|at| from + at)
}

/// The page as UTF-8: a BOM wins, then strict UTF-8, then an encoding
/// declared in a `<meta>` tag in the first KiB (decoded strictly). As in
/// browsers, a `<meta>` declaring UTF-16 means UTF-8 (the bytes that
/// declare it are ASCII).
fn decode(bytes: &[u8]) -> Result<String, Skip> {
    use encoding_rs::{UTF_8, UTF_16BE, UTF_16LE};
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let rest = &bytes[bom..];
        if encoding == UTF_8 && super::looks_binary(rest) {
            return Err(Skip::Binary);
        }
        return strict(encoding, rest);
    }
    if super::looks_binary(bytes) {
        return Err(Skip::Binary);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_owned());
    }
    match declared_charset(bytes).and_then(|label| encoding_rs::Encoding::for_label(&label)) {
        Some(encoding) if ![UTF_8, UTF_16LE, UTF_16BE].contains(&encoding) => {
            strict(encoding, bytes)
        }
        _ => Err(Skip::InvalidEncoding),
    }
}

fn strict(encoding: &'static encoding_rs::Encoding, bytes: &[u8]) -> Result<String, Skip> {
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or(Skip::InvalidEncoding)
}

/// The label after the first `charset=` in the first KiB (`<meta
/// charset="...">` or `<meta http-equiv=... content="...; charset=...">`).
fn declared_charset(bytes: &[u8]) -> Option<Vec<u8>> {
    let head: Vec<u8> = bytes
        .iter()
        .take(1024)
        .map(u8::to_ascii_lowercase)
        .collect();
    let at = head.windows(8).position(|w| w == b"charset=")?;
    let rest = head.get(at + 8..)?;
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let label: Vec<u8> = rest
        .iter()
        .copied()
        .take_while(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(b))
        .collect();
    (!label.is_empty()).then_some(label)
}

/// The `<title>` text and the rendered page.
fn render(html: &str) -> Result<(Option<String>, String), Skip> {
    let failure = |error: html2text::Error| Skip::ParserFailure(format!("HTML: {error}"));
    let config = renderer();
    let dom = config.parse_html(html.as_bytes()).map_err(failure)?;
    let title = prune(&dom).map(|title| title_text(&config, &title));
    let tree = config.dom_to_render_tree(&dom).map_err(failure)?;
    let text = config
        .render_to_string(tree, RENDER_WIDTH)
        .map_err(failure)?;
    Ok((title.flatten(), text))
}

fn renderer() -> Config<Markdownish> {
    config::with_decorator(Markdownish)
        .no_table_borders()
        .allow_width_overflow()
}

/// The text of a `<title>` element, whitespace collapsed.
fn title_text(config: &Config<Markdownish>, title: &Handle) -> Option<String> {
    // The title's children are text nodes; render them as a document of
    // their own (html2text exposes no text accessor).
    let dom = RcDom::default();
    dom.document
        .children
        .borrow_mut()
        .extend(title.children.borrow().iter().cloned());
    let tree = config.dom_to_render_tree(&dom).ok()?;
    let text = config.render_to_string(tree, RENDER_WIDTH).ok()?;
    let text = text
        .replace(HEADING_MARK, "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!text.is_empty()).then_some(text)
}

/// Cuts every non-content element out of the tree (iteratively: pages can
/// nest deeply). Returns the first `<title>` element.
fn prune(dom: &RcDom) -> Option<Handle> {
    let mut title = None;
    let mut stack: Vec<(Handle, bool)> = vec![(dom.document.clone(), false)];
    while let Some((node, in_content)) = stack.pop() {
        node.children.borrow_mut().retain(|child| {
            let Some(name) = child.element_name() else {
                return true;
            };
            let name = name.to_ascii_lowercase();
            if name == "title" && title.is_none() {
                title = Some(child.clone());
            }
            let framing = matches!(name.as_str(), "header" | "footer") && !in_content;
            !(DROPPED.contains(&name.as_str()) || framing || hidden(child))
        });
        for child in node.children.borrow().iter() {
            if let Some(name) = child.element_name() {
                let name = name.to_ascii_lowercase();
                let in_content = in_content || CONTENT_ROOTS.contains(&name.as_str());
                stack.push((child.clone(), in_content));
            }
        }
    }
    title
}

/// `hidden`, `aria-hidden="true"` or `role="navigation"`.
fn hidden(node: &Handle) -> bool {
    let Element { attrs, .. } = &node.data else {
        return false;
    };
    attrs.borrow().iter().any(|attr| {
        let value = attr.value.trim().to_ascii_lowercase();
        match &*attr.name.local {
            "hidden" => true,
            "aria-hidden" => value == "true",
            "role" => value == "navigation",
            _ => false,
        }
    })
}

/// Plain text with markdown-like block prefixes and marked headings; no
/// link, emphasis or footnote decorations.
#[derive(Clone, Debug)]
struct Markdownish;

impl TextDecorator for Markdownish {
    type Annotation = ();

    fn decorate_link_start(&mut self, _url: &str) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_link_end(&mut self) -> String {
        String::new()
    }
    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_code_end(&self) -> String {
        String::new()
    }
    fn decorate_preformat_first(&self) {}
    fn decorate_preformat_cont(&self) {}
    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        (title.to_owned(), ())
    }
    fn header_prefix(&self, level: usize) -> String {
        format!("{HEADING_MARK}{} ", "#".repeat(level.clamp(1, 6)))
    }
    fn quote_prefix(&self) -> String {
        "> ".to_owned()
    }
    fn unordered_item_prefix(&self) -> String {
        "- ".to_owned()
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }
    fn make_subblock_decorator(&self) -> Self {
        Markdownish
    }
    fn decorate_superscript_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_superscript_end(&self) -> String {
        String::new()
    }
    fn finalise(&mut self, _urls: Vec<String>) -> Vec<TaggedLine<()>> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::chunk;
    use super::*;

    const PAGE: &str = r#"<!doctype html>
<html><head><title>The Moor &amp; Its Roads</title>
<style>body { color: red } .STYLE-MARKER {}</style>
<script>var SCRIPT_MARKER = "<p>not text</p>";</script>
</head><body>
<header><a href="/">Site banner HEADER-MARKER</a></header>
<nav><ul><li>Home NAV-MARKER</li></ul></nav>
<main>
<h1>The Moor</h1>
<p>Fog &lt;thick&gt; and   <b>cold</b>, see <a href="/x">the roads</a>.</p>
<!-- COMMENT-MARKER -->
<h2>History</h2>
<p># not a heading, just text</p>
<h3>The Founding</h3>
<p>Founders came.</p>
<ul><li>first</li><li>second</li></ul>
<noscript>NOSCRIPT-MARKER</noscript>
<template><p>TEMPLATE-MARKER</p></template>
<div hidden>HIDDEN-MARKER</div>
<h2>Weather</h2>
<p>Rain.</p>
</main>
<footer>FOOTER-MARKER</footer>
<script>document.write("SCRIPT2-MARKER")</script>
</body></html>"#;

    #[test]
    fn page_becomes_headings_and_plain_text() {
        let doc = parse_html("https://example.org/moor.html", PAGE.as_bytes()).expect("parse");
        assert_eq!(doc.title, "The Moor & Its Roads");
        let chunks = chunk(&doc);
        let all: String = chunks.iter().map(|c| c.text.as_str()).collect();
        for marker in [
            "MARKER",
            "<p>",
            "&lt;",
            "&amp;",
            "color",
            "Site banner",
            "Home",
        ] {
            assert!(!all.contains(marker), "{marker} leaked: {all:?}");
            assert!(
                !doc.body.contains(marker),
                "{marker} in body: {:?}",
                doc.body
            );
        }
        let got: Vec<_> = chunks
            .iter()
            .map(|c| (c.trail.clone(), c.text.clone()))
            .collect();
        let trail = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            [
                (
                    trail(&[]),
                    "Fog <thick> and cold, see the roads.".to_owned()
                ),
                (
                    trail(&["History"]),
                    "\\# not a heading, just text".to_owned()
                ),
                (
                    trail(&["History", "The Founding"]),
                    "Founders came.\n- first\n- second".to_owned()
                ),
                (trail(&["Weather"]), "Rain.".to_owned()),
            ]
        );
        // Line ranges count lines of the extracted text, of which the body is
        // a contiguous run starting at `body_line`.
        let body: Vec<&str> = doc.body.lines().collect();
        for c in &chunks {
            let (first, last) = c.lines;
            let span = body[first - doc.body_line..=last - doc.body_line].join("\n");
            assert_eq!(span, c.text);
        }
        // The `<h1>` opening the page is its title line, left out.
        assert!(!doc.body.contains("# The Moor\n"));
        assert!(doc.body_line > 1);
    }

    #[test]
    fn title_falls_back_to_h1_then_stem() {
        let doc = parse_html("a.html", b"<h1>Only <i>Heading</i></h1><p>x</p>").expect("parse");
        assert_eq!(doc.title, "Only Heading");
        assert_eq!(doc.body, "x");
        let doc = parse_html("/kb/page.html", b"<p>no heading</p><h1>Later</h1>").expect("parse");
        assert_eq!(doc.title, "Later");
        // A later `<h1>` is not the title line: it stays as a heading.
        assert!(doc.body.contains("# Later"), "{:?}", doc.body);
        let doc = parse_html("/kb/page.html", b"<p>no heading</p>").expect("parse");
        assert_eq!(doc.title, "page");
    }

    #[test]
    fn all_script_page_is_an_empty_document() {
        let page = "<html><head><script>alert(1)</script></head><body>\
                    <script>var x = 1;</script><style>p{}</style></body></html>";
        let doc = parse_html("s.html", page.as_bytes()).expect("parse");
        assert_eq!(doc.body, "");
        assert!(chunk(&doc).is_empty());
        let doc = parse_html("e.html", b"").expect("parse");
        assert_eq!(doc.body, "");
    }

    #[test]
    fn article_headers_are_kept() {
        let page = "<header>SITE</header><article><header><h1>Post</h1></header>\
                    <p>Body.</p><footer>By me.</footer></article>";
        let doc = parse_html("p.html", page.as_bytes()).expect("parse");
        assert_eq!(doc.title, "Post");
        assert_eq!(doc.body, "Body.\n\nBy me.");
        assert_eq!(doc.body_line, 3);
    }

    #[test]
    fn encodings() {
        // BOM stripped.
        let doc = parse_html("b.html", b"\xef\xbb\xbf<p>caf\xc3\xa9</p>").expect("parse");
        assert_eq!(doc.body, "café");
        // Declared Latin-1 (windows-1252) is decoded.
        let page = b"<meta charset=\"iso-8859-1\"><p>caf\xe9</p>";
        assert_eq!(parse_html("l.html", page).expect("parse").body, "café");
        let page = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"><p>\x93q\x94</p>";
        assert_eq!(
            parse_html("w.html", page).expect("parse").body,
            "\u{201c}q\u{201d}"
        );
        // UTF-16 with a BOM (full of NULs, yet not binary).
        let mut utf16 = vec![0xff, 0xfe];
        utf16.extend("<p>wide</p>".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(parse_html("u.html", &utf16).expect("parse").body, "wide");
        // Undeclared non-UTF-8 and binary are refused.
        assert_eq!(
            parse_html("x.html", b"<p>caf\xe9</p>"),
            Err(Skip::InvalidEncoding)
        );
        assert_eq!(
            parse_html("x.html", b"<meta charset=utf-8><p>caf\xe9</p>"),
            Err(Skip::InvalidEncoding)
        );
        assert_eq!(
            parse_html("x.html", b"<meta charset=utf-16><p>caf\xe9</p>"),
            Err(Skip::InvalidEncoding)
        );
        assert_eq!(
            parse_html("x.html", b"<p>\0\x01\x02</p>"),
            Err(Skip::Binary)
        );
        assert_eq!(
            parse_html("x.html", b"\xef\xbb\xbf<p>\0\x01\x02</p>"),
            Err(Skip::Binary)
        );
    }

    #[test]
    fn nesting_depth_is_estimated() {
        assert_eq!(
            max_depth("<div><p>a<p>b<br><img src=x/><span>c</span></div>"),
            2
        );
        assert_eq!(max_depth("<DIV><Div>x</div></DIV><div>"), 2);
        assert_eq!(
            max_depth("<script>if (a<b) { s = '<div><div>' }</script><!-- <div><div> --><i/>"),
            0
        );
        assert_eq!(max_depth("a < b, <3, </>, <"), 0);
        assert_eq!(max_depth("<ul><li>a<li>b</ul><table><tr><td>x</table>"), 1);
    }

    #[test]
    fn deep_nesting_is_parsed_or_refused_without_overflow() {
        let depth = 2_000;
        let page = format!(
            "{}<p>deep</p>{}",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        );
        let doc = parse_html("d.html", page.as_bytes()).expect("parse");
        assert!(doc.body.contains("deep"));
        let page = format!("{}deep", "<b>".repeat(depth));
        parse_html("d.html", page.as_bytes()).expect("parse");
        // Past the limit the page is refused before parsing.
        let page = "<div>".repeat(MAX_DEPTH + 1);
        assert_eq!(
            parse_html("d.html", page.as_bytes()),
            Err(Skip::ParserFailure(format!(
                "HTML nested more than {MAX_DEPTH} elements deep"
            )))
        );
    }
}
