//! Text helpers for the offline generator: turning passage markdown into
//! plain sentences, normalising untrusted one-line strings, and reducing
//! words to crude stems for overlap scoring. Invariants: nothing returned here
//! contains `**`, and [`one_line`] output contains no newline or control
//! character.

/// Removes `**` bold markup.
pub(crate) fn strip_bold(text: &str) -> String {
    text.replace("**", "")
}

/// Collapses all whitespace (newlines included) to single spaces, drops
/// control characters and `**`, and trims.
pub(crate) fn one_line(text: &str) -> String {
    let cleaned: String = strip_bold(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A reason as it is quoted in prose: one line, without a trailing full stop
/// (the caller adds its own punctuation).
pub(crate) fn reason_phrase(reason: &str) -> String {
    let line = one_line(reason);
    let trimmed = line.trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        "no reason given".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Splits passage markdown into plain sentences, in order: `**` removed,
/// heading lines dropped, list and quote markers removed, whitespace
/// collapsed. Paragraphs and list items always end a sentence.
pub(crate) fn sentences(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block in blocks(&strip_bold(markdown)) {
        split_sentences(&block, &mut out);
    }
    out
}

/// Paragraphs and list items as single lines.
fn blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, blocks: &mut Vec<String>| {
        let line = one_line(current);
        if !line.is_empty() {
            blocks.push(line);
        }
        current.clear();
    };
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("```") {
            flush(&mut current, &mut blocks);
            continue;
        }
        let (item, body) = strip_marker(line);
        if item {
            flush(&mut current, &mut blocks);
        }
        current.push(' ');
        current.push_str(body);
    }
    flush(&mut current, &mut blocks);
    blocks
}

/// Strips a leading list or quote marker; says whether the line starts a
/// new item.
fn strip_marker(line: &str) -> (bool, &str) {
    let mut body = line;
    let mut item = false;
    while let Some(rest) = body.strip_prefix('>') {
        body = rest.trim_start();
        item = true;
    }
    for marker in ["- ", "* ", "+ "] {
        if let Some(rest) = body.strip_prefix(marker) {
            return (true, rest.trim_start());
        }
    }
    let digits = body.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 {
        let rest = &body[digits..];
        if let Some(rest) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return (true, rest.trim_start());
        }
    }
    (item, body)
}

/// Splits one line at `.`, `!` or `?` (plus closing quotes or brackets)
/// followed by a space and something that can start a sentence.
fn split_sentences(line: &str, out: &mut Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if matches!(c, '.' | '!' | '?') {
            let mut end = i + 1;
            while end < chars.len() && matches!(chars[end].1, '"' | '\'' | ')' | ']' | '”' | '’')
            {
                end += 1;
            }
            let next_is_space = end < chars.len() && chars[end].1 == ' ';
            let starts_sentence = chars.get(end + 1).is_some_and(|&(_, n)| {
                n.is_uppercase() || n.is_ascii_digit() || matches!(n, '"' | '\'' | '“' | '‘' | '(')
            });
            if next_is_space && starts_sentence && !is_abbreviation(&line[..chars[i].0]) {
                let byte_end = chars.get(end).map_or(line.len(), |&(b, _)| b);
                push_sentence(&line[start..byte_end], out);
                start = byte_end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    push_sentence(&line[start..], out);
}

fn push_sentence(sentence: &str, out: &mut Vec<String>) {
    let sentence = sentence.trim();
    if !sentence.is_empty() {
        out.push(sentence.to_owned());
    }
}

/// Whether the text before a full stop ends with a title abbreviation or a
/// single initial ("St.", "Mr.", "J."), which do not end a sentence.
fn is_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(|c: char| !c.is_alphabetic())
        .next()
        .unwrap_or("");
    let single_initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
    single_initial
        || matches!(
            word,
            "St" | "Mr"
                | "Mrs"
                | "Ms"
                | "Dr"
                | "Mt"
                | "Capt"
                | "Sgt"
                | "Lt"
                | "Gen"
                | "Col"
                | "Fr"
                | "Sr"
                | "Jr"
                | "vs"
                | "etc"
                | "e.g"
                | "i.e"
        )
}

/// Words that carry no content for matching a question to a sentence.
const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "before", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had",
    "has", "have", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is",
    "it", "its", "know", "me", "my", "no", "not", "of", "on", "or", "our", "she", "should", "so",
    "some", "tell", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "those", "to", "us", "was", "we", "were", "what", "when", "where", "which", "who",
    "whom", "whose", "why", "will", "with", "would", "you", "your",
];

/// Lowercased, stemmed content words of `text`, deduplicated, in order of
/// first appearance.
pub(crate) fn content_stems(text: &str) -> Vec<String> {
    let mut stems: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let lower = word.to_lowercase();
        if lower.chars().count() < 2 || STOP_WORDS.contains(&lower.as_str()) {
            continue;
        }
        let stem = stem(&lower);
        if !stems.contains(&stem) {
            stems.push(stem);
        }
    }
    stems
}

/// A crude English suffix stemmer (plural `s`/`es`/`ies`, `ed`, `ing`, a
/// final `e`), enough for "guards", "guarded" and "guarding" to meet.
pub(crate) fn stem(word: &str) -> String {
    let len = word.chars().count();
    let mut stem = if len > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if len > 4 && word.ends_with("sses") {
        word[..word.len() - 2].to_owned()
    } else if len > 5 && word.ends_with("ing") {
        undouble(&word[..word.len() - 3])
    } else if len > 4 && word.ends_with("ed") && !word.ends_with("eed") {
        undouble(&word[..word.len() - 2])
    } else if len > 3
        && word.ends_with("es")
        && ["ses", "xes", "zes", "ches", "shes"]
            .iter()
            .any(|s| word.ends_with(s))
    {
        word[..word.len() - 2].to_owned()
    } else if len > 3
        && word.ends_with('s')
        && !["ss", "us", "is"].iter().any(|s| word.ends_with(s))
    {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    };
    if stem.chars().count() > 3 && stem.ends_with('e') {
        stem.pop();
    }
    stem
}

/// "runn" -> "run", but "guard" stays, and so do "ll"/"ss"/"zz" endings.
fn undouble(stem: &str) -> String {
    let mut chars = stem.chars().rev();
    if let (Some(a), Some(b)) = (chars.next(), chars.next())
        && a == b
        && !matches!(a, 'l' | 's' | 'z')
        && !matches!(a, 'a' | 'e' | 'i' | 'o' | 'u')
    {
        let mut s = stem.to_owned();
        s.pop();
        return s;
    }
    stem.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_strip_markup_and_split() {
        let text = "# The Waystone\n\nThe **Shattered Waystone** stands on the moor. \
                    St. Brannoc blessed it!\nIt hums at night? Nobody\nknows why.\n\n- A list item\n- Another one.";
        let got = sentences(text);
        assert_eq!(
            got,
            vec![
                "The Shattered Waystone stands on the moor.",
                "St. Brannoc blessed it!",
                "It hums at night?",
                "Nobody knows why.",
                "A list item",
                "Another one.",
            ]
        );
    }

    #[test]
    fn stems_meet() {
        for (a, b) in [
            ("guards", "guarded"),
            ("guarding", "guard"),
            ("stones", "stone"),
            ("running", "run"),
            ("moved", "move"),
            ("stories", "story"),
            ("boxes", "box"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} vs {b}");
        }
        assert_eq!(
            content_stems("Who guards the waystone?"),
            vec!["guard", "wayston"]
        );
    }

    #[test]
    fn one_line_and_reason() {
        assert_eq!(one_line("a\n **b**\t\u{7}c "), "a b c");
        assert_eq!(
            reason_phrase("retrieval timed out after 10 s.\n"),
            "retrieval timed out after 10 s"
        );
    }
}
