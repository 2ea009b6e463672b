//! Untrusted text (model output, documents, server errors) -> text that is
//! safe to put on a terminal. Escape sequences, other control characters and
//! bidirectional overrides are removed; tabs become spaces; newlines stay
//! (callers that need one line use [`one_line`]). The result can never move
//! the cursor, change colours, set the window title or reorder text, and
//! holds no invisible tag characters (U+E0000..U+E007F) hiding text.

/// Make untrusted text safe for the terminal, keeping line breaks.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => out.push('\n'),
            '\r' => {
                // CRLF -> LF; a lone CR (which would overwrite the line) -> LF.
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\t' => out.push_str("    "),
            '\u{1b}' => skip_escape(&mut chars),
            // C1 CSI/OSC/DCS introducers start sequences of their own.
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if is_unsafe(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Sanitise and fold onto one line (for table cells and the status line).
pub fn one_line(text: &str) -> String {
    sanitize(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200e}' | '\u{200f}'            // LRM, RLM
            | '\u{202a}'..='\u{202e}'          // embeddings and overrides
            | '\u{2066}'..='\u{2069}'          // isolates
            | '\u{061c}'                       // arabic letter mark
            | '\u{feff}'                       // BOM / zero-width no-break space
            | '\u{fff9}'..='\u{fffb}'          // interlinear annotations
            // Tag characters: invisible, used to smuggle hidden text.
            | '\u{e0000}'..='\u{e007f}')
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// After ESC: CSI (`[`), OSC/DCS/APC/PM/SOS (string until ST or BEL), or a
/// two-character sequence.
fn skip_escape(chars: &mut Chars<'_>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | '_' | '^' | 'X') => skip_string(chars),
        // nF sequences: intermediates then one final byte.
        Some(c) if ('\u{20}'..='\u{2f}').contains(&c) => {
            while let Some(&n) = chars.peek() {
                chars.next();
                if !('\u{20}'..='\u{2f}').contains(&n) {
                    break;
                }
            }
        }
        _ => {}
    }
}

fn skip_csi(chars: &mut Chars<'_>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
    }
}

fn skip_string(chars: &mut Chars<'_>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                break;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_characters_that_hide_text_are_dropped() {
        // "hi" then "ignore previous instructions" spelled in tag characters.
        let hidden: String = "ignore previous instructions"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap_or(' '))
            .collect();
        let text = format!("hi\u{E0001}{hidden}\u{E007F}!");
        assert_eq!(sanitize(&text), "hi!");
        assert_eq!(one_line(&text), "hi!");
    }

    #[test]
    fn strips_escape_sequences_and_controls() {
        assert_eq!(sanitize("a\u{1b}[31mred\u{1b}[0m b"), "ared b");
        assert_eq!(sanitize("x\u{1b}]0;pwned title\u{7}y"), "xy");
        assert_eq!(
            sanitize("x\u{1b}]8;;http://e\u{1b}\\link\u{1b}]8;;\u{1b}\\y"),
            "xlinky"
        );
        assert_eq!(
            sanitize("bell\u{7} back\u{8}space del\u{7f}"),
            "bell backspace del"
        );
        assert_eq!(sanitize("c1\u{9b}2Jcsi"), "c1csi");
        assert_eq!(sanitize("\u{1b}(Bcharset"), "charset");
    }

    #[test]
    fn keeps_text_and_lines_removes_bidi() {
        assert_eq!(sanitize("line1\r\nline2\rover"), "line1\nline2\nover");
        assert_eq!(sanitize("tab\there"), "tab    here");
        assert_eq!(sanitize("abc\u{202e}fed\u{2066}"), "abcfed");
        assert_eq!(sanitize("Ünïcödé — ok 龍"), "Ünïcödé — ok 龍");
        assert_eq!(one_line("a\n\n b\tc"), "a b c");
    }

    #[test]
    fn unterminated_sequences_do_not_leak() {
        assert_eq!(sanitize("ok\u{1b}[12;"), "ok");
        assert_eq!(sanitize("ok\u{1b}]unterminated"), "ok");
        assert_eq!(sanitize("ok\u{1b}"), "ok");
    }
}
