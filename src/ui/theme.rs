//! Colours and text styles. Only the 16 basic ANSI colours are used, so the
//! TUI looks right in a 16-colour terminal; with `NO_COLOR` set every colour
//! is dropped and only bold/italic/reverse remain.

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub border: Style,
    pub border_focused: Style,
    pub title: Style,
    pub dim: Style,
    pub h1: Style,
    pub h2: Style,
    pub h3: Style,
    pub quote: Style,
    pub quote_bar: Style,
    pub list_marker: Style,
    pub code: Style,
    pub link: Style,
    pub citation: Style,
    pub user: Style,
    pub assistant: Style,
    pub ok: Style,
    pub warn: Style,
    pub error: Style,
    pub selected: Style,
    pub status_bar: Style,
    pub key: Style,
    /// Waterfall segments: waiting for a slot or a rate token, in flight,
    /// streaming, retry backoff. Their glyphs differ too (`waterfall::GLYPHS`),
    /// so they read without colour.
    pub wf_queued: Style,
    pub wf_flight: Style,
    pub wf_stream: Style,
    pub wf_backoff: Style,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set (to anything non-empty).
    pub fn from_env() -> Self {
        match std::env::var_os("NO_COLOR") {
            Some(v) if !v.is_empty() => Self::plain(),
            _ => Self::colour(),
        }
    }

    pub fn colour() -> Self {
        let fg = |c: Color| Style::new().fg(c);
        Self {
            border: fg(Color::DarkGray),
            border_focused: fg(Color::Cyan),
            title: Style::new().add_modifier(Modifier::BOLD),
            dim: fg(Color::DarkGray),
            h1: fg(Color::Yellow).add_modifier(Modifier::BOLD),
            h2: fg(Color::Cyan).add_modifier(Modifier::BOLD),
            h3: Style::new().add_modifier(Modifier::BOLD),
            quote: fg(Color::Gray).add_modifier(Modifier::ITALIC),
            quote_bar: fg(Color::DarkGray),
            list_marker: fg(Color::Yellow),
            code: fg(Color::Magenta),
            link: fg(Color::Blue).add_modifier(Modifier::UNDERLINED),
            citation: fg(Color::Cyan).add_modifier(Modifier::BOLD),
            user: fg(Color::Green).add_modifier(Modifier::BOLD),
            assistant: fg(Color::Magenta).add_modifier(Modifier::BOLD),
            ok: fg(Color::Green),
            warn: fg(Color::Yellow),
            error: fg(Color::Red).add_modifier(Modifier::BOLD),
            selected: Style::new().add_modifier(Modifier::REVERSED),
            status_bar: Style::new().bg(Color::Blue).fg(Color::White),
            key: fg(Color::Yellow).add_modifier(Modifier::BOLD),
            wf_queued: fg(Color::DarkGray),
            wf_flight: fg(Color::Cyan),
            wf_stream: fg(Color::Magenta),
            wf_backoff: fg(Color::Yellow),
        }
    }

    pub fn plain() -> Self {
        let none = Style::new();
        let bold = Style::new().add_modifier(Modifier::BOLD);
        Self {
            border: none,
            border_focused: bold,
            title: bold,
            dim: none,
            h1: bold,
            h2: bold,
            h3: bold,
            quote: Style::new().add_modifier(Modifier::ITALIC),
            quote_bar: none,
            list_marker: none,
            code: none,
            link: Style::new().add_modifier(Modifier::UNDERLINED),
            citation: bold,
            user: bold,
            assistant: bold,
            ok: none,
            warn: bold,
            error: bold,
            selected: Style::new().add_modifier(Modifier::REVERSED),
            status_bar: Style::new().add_modifier(Modifier::REVERSED),
            key: bold,
            wf_queued: none,
            wf_flight: none,
            wf_stream: none,
            wf_backoff: none,
        }
    }
}
