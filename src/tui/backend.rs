//! The TUI's terminal backend: ratatui's crossterm backend, with a drawing
//! loop that writes each frame in one go.
//!
//! ratatui's `CrosstermBackend::draw` queues every cell as a crossterm
//! command: a `Print` goes through `fmt::write` into `Stdout`, which takes
//! its lock and line buffer (1 KB) on every call, so a frame leaves in
//! 1 KB writes. On the first frame of an empty home that was 0.6 M of the
//! 5.2 M instructions run to it (callgrind), and more on a fuller screen.
//! [`Backend::draw`] builds the frame's bytes in a buffer kept between
//! frames, writing cursor moves and text itself, and hands the whole frame
//! to the writer at once. Style changes (rare: on a change of colour or
//! modifier) still go through crossterm's own commands, so colours, and
//! `NO_COLOR` as crossterm honours it, are unchanged.
//!
//! Invariant: the bytes are exactly those ratatui's backend writes for the
//! same cells (a test compares the two on random frames); everything but
//! `draw` is ratatui's backend itself.

use std::io::{self, Write};

use crossterm::queue;
use crossterm::style::{
    Attribute, Color as CtColor, Colors, SetAttribute, SetBackgroundColor, SetColors,
    SetForegroundColor, SetUnderlineColor,
};
use ratatui::backend::{ClearType, CrosstermBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use ratatui::style::{Color, Modifier};

/// ratatui's crossterm backend with a faster [`draw`](Backend::draw).
#[derive(Debug)]
pub struct Backend<W: Write> {
    inner: CrosstermBackend<W>,
    /// The frame being built; kept to reuse its allocation.
    frame: Vec<u8>,
}

impl<W: Write> Backend<W> {
    pub fn new(writer: W) -> Self {
        Self {
            inner: CrosstermBackend::new(writer),
            frame: Vec::new(),
        }
    }
}

/// Writes that bypass drawing (OSC 52) go to the terminal as they would
/// through ratatui's backend.
impl<W: Write> Write for Backend<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Write::flush(&mut self.inner)
    }
}

/// ratatui's colours as crossterm's (ratatui's own conversion is private
/// to its backend crate).
fn crossterm_color(color: Color) -> CtColor {
    match color {
        Color::Reset => CtColor::Reset,
        Color::Black => CtColor::Black,
        Color::Red => CtColor::DarkRed,
        Color::Green => CtColor::DarkGreen,
        Color::Yellow => CtColor::DarkYellow,
        Color::Blue => CtColor::DarkBlue,
        Color::Magenta => CtColor::DarkMagenta,
        Color::Cyan => CtColor::DarkCyan,
        Color::Gray => CtColor::Grey,
        Color::DarkGray => CtColor::DarkGrey,
        Color::LightRed => CtColor::Red,
        Color::LightGreen => CtColor::Green,
        Color::LightBlue => CtColor::Blue,
        Color::LightYellow => CtColor::Yellow,
        Color::LightMagenta => CtColor::Magenta,
        Color::LightCyan => CtColor::Cyan,
        Color::White => CtColor::White,
        Color::Indexed(i) => CtColor::AnsiValue(i),
        Color::Rgb(r, g, b) => CtColor::Rgb { r, g, b },
    }
}

/// `ESC [ row ; col H` for the 0-based cell `(x, y)`, as crossterm's
/// `MoveTo` writes it.
fn move_to(out: &mut Vec<u8>, x: u16, y: u16) {
    out.extend_from_slice(b"\x1b[");
    decimal(out, u32::from(y) + 1);
    out.push(b';');
    decimal(out, u32::from(x) + 1);
    out.push(b'H');
}

fn decimal(out: &mut Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The attribute changes from one modifier set to the next, in the order
/// ratatui's backend writes them (its `ModifierDiff`).
fn modifier_diff(out: &mut Vec<u8>, from: Modifier, to: Modifier) -> io::Result<()> {
    let removed = from - to;
    if removed.contains(Modifier::REVERSED) {
        queue!(out, SetAttribute(Attribute::NoReverse))?;
    }
    let reset_intensity = removed.intersects(Modifier::BOLD | Modifier::DIM);
    if reset_intensity {
        // Normal intensity ends both; what stays is set again.
        queue!(out, SetAttribute(Attribute::NormalIntensity))?;
        if to.contains(Modifier::DIM) {
            queue!(out, SetAttribute(Attribute::Dim))?;
        }
        if to.contains(Modifier::BOLD) {
            queue!(out, SetAttribute(Attribute::Bold))?;
        }
    }
    let off = [
        (Modifier::ITALIC, Attribute::NoItalic),
        (Modifier::UNDERLINED, Attribute::NoUnderline),
        (Modifier::CROSSED_OUT, Attribute::NotCrossedOut),
        (Modifier::HIDDEN, Attribute::NoHidden),
    ];
    for (modifier, attribute) in off {
        if removed.contains(modifier) {
            queue!(out, SetAttribute(attribute))?;
        }
    }
    if removed.intersects(Modifier::SLOW_BLINK | Modifier::RAPID_BLINK) {
        queue!(out, SetAttribute(Attribute::NoBlink))?;
    }
    let added = to - from;
    let on = [
        (Modifier::REVERSED, Attribute::Reverse, true),
        (Modifier::BOLD, Attribute::Bold, !reset_intensity),
        (Modifier::ITALIC, Attribute::Italic, true),
        (Modifier::UNDERLINED, Attribute::Underlined, true),
        (Modifier::DIM, Attribute::Dim, !reset_intensity),
        (Modifier::CROSSED_OUT, Attribute::CrossedOut, true),
        (Modifier::HIDDEN, Attribute::Hidden, true),
        (Modifier::SLOW_BLINK, Attribute::SlowBlink, true),
        (Modifier::RAPID_BLINK, Attribute::RapidBlink, true),
    ];
    for (modifier, attribute, wanted) in on {
        if wanted && added.contains(modifier) {
            queue!(out, SetAttribute(attribute))?;
        }
    }
    Ok(())
}

impl<W: Write> ratatui::backend::Backend for Backend<W> {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let out = &mut self.frame;
        out.clear();
        let (mut fg, mut bg, mut underline) = (Color::Reset, Color::Reset, Color::Reset);
        let mut modifier = Modifier::empty();
        let mut last: Option<(u16, u16)> = None;
        for (x, y, cell) in content {
            // A move unless this cell follows the last one on its row.
            if !matches!(last, Some((lx, ly)) if x == lx.wrapping_add(1) && y == ly) {
                move_to(out, x, y);
            }
            last = Some((x, y));
            if cell.modifier != modifier {
                modifier_diff(out, modifier, cell.modifier)?;
                modifier = cell.modifier;
            }
            if cell.fg != fg || cell.bg != bg {
                let colors = Colors::new(crossterm_color(cell.fg), crossterm_color(cell.bg));
                queue!(out, SetColors(colors))?;
                (fg, bg) = (cell.fg, cell.bg);
            }
            if cell.underline_color != underline {
                queue!(
                    out,
                    SetUnderlineColor(crossterm_color(cell.underline_color))
                )?;
                underline = cell.underline_color;
            }
            out.extend_from_slice(cell.symbol().as_bytes());
        }
        queue!(
            out,
            SetForegroundColor(CtColor::Reset),
            SetBackgroundColor(CtColor::Reset),
            SetUnderlineColor(CtColor::Reset),
            SetAttribute(Attribute::Reset),
        )?;
        self.inner.write_all(&self.frame)
    }

    fn append_lines(&mut self, n: u16) -> io::Result<()> {
        self.inner.append_lines(n)
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> io::Result<()> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> io::Result<Size> {
        self.inner.size()
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> io::Result<()> {
        ratatui::backend::Backend::flush(&mut self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ratatui::backend::Backend as _;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Keeps each write apart, shared with the test.
    #[derive(Clone, Default)]
    struct Writes(Rc<RefCell<Vec<Vec<u8>>>>);

    impl Writes {
        fn bytes(&self) -> Vec<u8> {
            self.0.borrow().concat()
        }
    }

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn color() -> impl Strategy<Value = Color> {
        prop_oneof![
            Just(Color::Reset),
            (0u8..16).prop_map(|i| [
                Color::Black,
                Color::Red,
                Color::Green,
                Color::Yellow,
                Color::Blue,
                Color::Magenta,
                Color::Cyan,
                Color::Gray,
                Color::DarkGray,
                Color::LightRed,
                Color::LightGreen,
                Color::LightYellow,
                Color::LightBlue,
                Color::LightMagenta,
                Color::LightCyan,
                Color::White,
            ][usize::from(i)]),
            any::<u8>().prop_map(Color::Indexed),
            any::<(u8, u8, u8)>().prop_map(|(r, g, b)| Color::Rgb(r, g, b)),
        ]
    }

    fn cell() -> impl Strategy<Value = (u16, u16, Cell)> {
        let symbols = prop_oneof![
            Just(" "),
            Just("a"),
            Just("│"),
            Just("█"),
            Just("界"),
            Just("e\u{301}"),
        ];
        (
            0u16..4,
            0u16..3,
            symbols,
            color(),
            color(),
            color(),
            any::<u16>(),
        )
            .prop_map(|(x, y, symbol, fg, bg, underline, bits)| {
                let mut cell = Cell::new(symbol);
                cell.fg = fg;
                cell.bg = bg;
                cell.underline_color = underline;
                cell.modifier = Modifier::from_bits_truncate(bits);
                (x, y, cell)
            })
    }

    proptest! {
        /// Any run of cells, in any order of positions, styles and
        /// modifiers: the same bytes as ratatui's backend.
        #[test]
        fn writes_what_ratatuis_backend_writes(cells in proptest::collection::vec(cell(), 0..40)) {
            let (ours_out, theirs_out) = (Writes::default(), Writes::default());
            let mut ours = Backend::new(ours_out.clone());
            let mut theirs = CrosstermBackend::new(theirs_out.clone());
            let content = || cells.iter().map(|(x, y, c)| (*x, *y, c));
            ours.draw(content()).expect("draw");
            theirs.draw(content()).expect("draw");
            // A second frame reuses the buffer and starts from no style.
            ours.draw(content()).expect("draw");
            theirs.draw(content()).expect("draw");
            prop_assert_eq!(ours_out.bytes(), theirs_out.bytes());
        }
    }

    #[test]
    fn a_frame_is_one_write() {
        let out = Writes::default();
        let mut backend = Backend::new(out.clone());
        let cells: Vec<Cell> = (0..500).map(|_| Cell::new("x")).collect();
        backend
            .draw(cells.iter().enumerate().map(|(i, c)| {
                (
                    u16::try_from(i % 100).unwrap(),
                    u16::try_from(i / 100).unwrap(),
                    c,
                )
            }))
            .expect("draw");
        let writes = out.0.borrow();
        assert_eq!(writes.len(), 1, "{} writes", writes.len());
        assert!(
            writes[0].starts_with(b"\x1b[1;1Hxxx"),
            "{:?}",
            &writes[0][..20]
        );
        assert!(writes[0].len() > 500);
    }
}
