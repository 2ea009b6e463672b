//! ASCII mode (`--ascii`, `[ui] ascii`): after a frame is drawn, every
//! border, glyph and symbol outside ASCII that the views use (box drawing,
//! block elements, arrows, bullets, the breaker and waterfall glyphs, the
//! ellipsis) is replaced by an ASCII look-alike, cell by cell.
//!
//! Invariants: a replacement is one ASCII character for one single-width
//! cell, so the layout does not move; distinct glyphs that mean different
//! things in one view stay distinct (the waterfall's segment kinds, the
//! breaker states); text outside the table (letters in any script) is left
//! as it is.

use ratatui::buffer::Buffer;

/// The ASCII stand-in for a glyph the views draw.
pub fn ascii_for(c: char) -> Option<char> {
    Some(match c {
        // Waterfall segments and marks (`waterfall::GLYPHS`).
        '░' => '_',
        '█' => '#',
        '▓' => '=',
        '·' => '.',
        '╌' | '┄' | '┈' => '~',
        '┆' | '┊' => ':',
        '◆' => '!',
        '▸' | '›' | '↪' => '>',
        '✓' => 'v',
        '✗' | '×' => 'x',
        '⏱' => 'T',
        '⊘' => '/',
        // Breaker badges: closed, half-open, open.
        '●' => '*',
        '◐' => '~',
        '○' => 'o',
        // Arrows, bullets, ellipsis, scroll bars.
        '↑' => '^',
        '↓' => 'v',
        '←' => '<',
        '→' => '>',
        '•' => '*',
        '…' => '~',
        '▏' | '▕' => '|',
        // Box drawing: lines and corners.
        '─' | '━' | '═' => '-',
        '│' | '┃' | '║' => '|',
        '\u{2500}'..='\u{257f}' => '+',
        '\u{2580}'..='\u{259f}' => '#',
        _ => return None,
    })
}

/// Replace every glyph in `buffer` that has an ASCII stand-in.
pub fn downgrade(buffer: &mut Buffer) {
    let mut tmp = [0u8; 4];
    for cell in &mut buffer.content {
        let mut chars = cell.symbol().chars();
        if let (Some(c), None) = (chars.next(), chars.next())
            && let Some(a) = ascii_for(c)
        {
            cell.set_symbol(a.encode_utf8(&mut tmp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::waterfall::GLYPHS;

    #[test]
    fn every_box_drawing_character_and_view_glyph_has_an_ascii_stand_in() {
        for c in ('\u{2500}'..='\u{259f}').chain("●◐○↑↓←→•…›▸·✓✗⏱⊘◆↪×".chars())
        {
            let a = ascii_for(c).unwrap_or_else(|| panic!("{c:?}"));
            assert!(a.is_ascii() && !a.is_ascii_control(), "{c:?} -> {a:?}");
        }
        assert_eq!(ascii_for('龍'), None);
        assert_eq!(ascii_for('a'), None);
    }

    #[test]
    fn waterfall_segments_stay_distinct() {
        let g = &GLYPHS;
        let segments: Vec<char> = [g.queued, g.in_flight, g.streaming, g.backoff]
            .iter()
            .map(|c| ascii_for(*c).unwrap_or(*c))
            .collect();
        for (i, a) in segments.iter().enumerate() {
            assert!(!segments[i + 1..].contains(a), "{segments:?}");
        }
    }
}
