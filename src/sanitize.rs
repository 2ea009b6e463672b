//! Untrusted text (model output, documents, server errors) -> text that is
//! safe to put on a terminal. Escape sequences, other control characters and
//! bidirectional overrides are removed; tabs become spaces; newlines stay
//! (callers that need one line use [`one_line`]). The result can never move
//! the cursor, change colours, set the window title or reorder text, and
//! holds no invisible tag characters (U+E0000..U+E007F) hiding text.

/// Make untrusted text safe for the terminal, keeping line breaks.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    sanitize_into(text, &mut out);
    out
}

/// Sanitise `text` onto the end of `out` and say where the sanitiser was
/// last at rest: `(in_len, out_len)` such that no escape sequence or
/// carriage return is open after `text[..in_len]`, which became
/// `out[..out_len]` (of what this call appended, counted from the start of
/// `out`). Sanitising a text in pieces cut at such points gives the same
/// result as sanitising it whole, which is what lets a streamed message be
/// sanitised one delta at a time (`ui::markdown::StreamedMarkdown`).
pub fn sanitize_into(text: &str, out: &mut String) -> (usize, usize) {
    let mut chars = text.chars();
    let mut rest = (0, out.len());
    while let Some(c) = chars.next() {
        let ended = match c {
            '\n' => {
                out.push('\n');
                true
            }
            '\r' => {
                // CRLF -> LF; a lone CR (which would overwrite the line) -> LF.
                match chars.clone().next() {
                    Some('\n') => true,
                    Some(_) => {
                        out.push('\n');
                        true
                    }
                    None => {
                        out.push('\n');
                        false
                    }
                }
            }
            '\t' => {
                out.push_str("    ");
                true
            }
            '\u{1b}' => skip_escape(&mut chars),
            // C1 CSI/OSC/DCS introducers start sequences of their own.
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if is_unsafe(c) => true,
            c => {
                out.push(c);
                true
            }
        };
        if ended {
            rest = (text.len() - chars.as_str().len(), out.len());
        }
    }
    rest
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

type Chars<'a> = std::str::Chars<'a>;

// The skips say whether the sequence ended before the text did.

/// After ESC: CSI (`[`), OSC/DCS/APC/PM/SOS (string until ST or BEL), or a
/// two-character sequence.
fn skip_escape(chars: &mut Chars<'_>) -> bool {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | '_' | '^' | 'X') => skip_string(chars),
        // nF sequences: intermediates then one final byte.
        Some(c) if ('\u{20}'..='\u{2f}').contains(&c) => {
            for n in chars.by_ref() {
                if !('\u{20}'..='\u{2f}').contains(&n) {
                    return true;
                }
            }
            false
        }
        Some(_) => true,
        None => false,
    }
}

fn skip_csi(chars: &mut Chars<'_>) -> bool {
    chars.any(|c| ('\u{40}'..='\u{7e}').contains(&c))
}

fn skip_string(chars: &mut Chars<'_>) -> bool {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return true,
            '\u{1b}' => {
                // ST is ESC \; a lone ESC ends the string too, unless the
                // text ends before saying which.
                return match chars.clone().next() {
                    Some('\\') => {
                        chars.next();
                        true
                    }
                    Some(_) => true,
                    None => false,
                };
            }
            _ => {}
        }
    }
    false
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
    fn sanitising_in_pieces_cut_where_it_rests_equals_sanitising_whole() {
        let texts = [
            "plain\r\ntext\rover\tand \u{1b}[31mred\u{1b}[0m",
            "x\u{1b}]8;;http://e\u{1b}\\link\u{1b}]8;;\u{1b}\\y\u{9b}2Jz\u{1b}(Bq",
            "\u{1b}[\n\nswallowed\u{1b}]title\u{7}after\r",
        ];
        for text in texts {
            for step in 1..=5 {
                let mut out = String::new();
                let mut done = 0;
                let mut end = 0;
                while end < text.len() {
                    end = (end + step).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    let mut piece = String::new();
                    let (used, kept) = sanitize_into(&text[done..end], &mut piece);
                    out.push_str(&piece[..kept]);
                    done += used;
                }
                out.push_str(&sanitize(&text[done..]));
                assert_eq!(out, sanitize(text), "{text:?} in steps of {step}");
            }
        }
    }

    #[test]
    fn unterminated_sequences_do_not_leak() {
        assert_eq!(sanitize("ok\u{1b}[12;"), "ok");
        assert_eq!(sanitize("ok\u{1b}]unterminated"), "ok");
        assert_eq!(sanitize("ok\u{1b}"), "ok");
    }
}
