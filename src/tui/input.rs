//! The input box beyond single keys: newlines, recalling earlier inputs,
//! bracketed paste, and the `[ui] max_input` limit. Pure: view in, view
//! (and notices) out; the engine is only read.
//!
//! Invariants:
//! - A paste is one insert, whatever its size, and never sends: only the
//!   submit key sends.
//! - History is the conversation's user messages in order (restored ones
//!   included, then the queued ones), with the other lines sent this run
//!   (commands, scenario requests) where they were sent; it is read when
//!   a recall key is pressed, never copied per key.
//! - Recalling keeps what was being typed: moving down past the newest
//!   entry brings it back.

use ratatui_textarea::CursorMove;

use crate::domain::Role;
use crate::engine::Engine;
use crate::ui::{Focus, ViewState};

/// A line sent this run that is not a chat message (a command, a scenario
/// request), and how many user messages the conversation had before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentLine {
    pub conversation: crate::engine::workspace::ConversationId,
    pub after: usize,
    pub text: String,
}

/// Where a recall stands: the entry shown and what was typed before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recall {
    pub position: Option<usize>,
    pub draft: String,
}

/// The user messages of the conversation on screen, oldest first: sent,
/// then queued.
fn user_messages<'a>(view: &ViewState, engine: &'a Engine) -> Vec<&'a str> {
    let Some(conversation) = engine.conversation(view.current) else {
        return Vec::new();
    };
    conversation
        .messages
        .iter()
        .filter(|m| m.role == Role::User)
        .map(|m| m.text.as_str())
        .chain(conversation.queue.iter().map(|q| q.text.as_str()))
        .collect()
}

/// Every earlier input of this session, oldest first.
pub fn history(view: &ViewState, engine: &Engine) -> Vec<String> {
    let users = user_messages(view, engine);
    let mut lines = view
        .sent_lines
        .iter()
        .filter(|l| l.conversation == view.current)
        .peekable();
    let mut out = Vec::with_capacity(users.len());
    for (i, text) in users.iter().enumerate() {
        while let Some(line) = lines.next_if(|l| l.after <= i) {
            out.push(line.text.clone());
        }
        out.push((*text).to_owned());
    }
    out.extend(lines.map(|l| l.text.clone()));
    out
}

/// Remember a line that was sent and is not a chat message.
pub fn remember_sent(view: &mut ViewState, engine: &Engine, text: String) {
    let after = user_messages(view, engine).len();
    view.sent_lines.push(SentLine {
        conversation: view.current,
        after,
        text,
    });
}

/// The whole text in the input, lines joined with newlines.
pub fn text(view: &ViewState) -> String {
    view.input.lines().join("\n")
}

/// Replace the input's text, the cursor at its end.
pub fn set_text(view: &mut ViewState, text: &str) {
    view.reset_input();
    view.input.insert_str(text);
}

/// Up: within the text, a line up; on its first line, the previous input.
pub fn up(view: &mut ViewState, engine: &Engine) {
    if view.input.cursor().0 > 0 {
        view.input.move_cursor(CursorMove::Up);
        return;
    }
    let entries = history(view, engine);
    let Some(last) = entries.len().checked_sub(1) else {
        return;
    };
    let position = match view.recall.position {
        None => {
            view.recall.draft = text(view);
            last
        }
        Some(p) => p.min(last).saturating_sub(1),
    };
    if view.recall.position == Some(position) {
        return;
    }
    view.recall.position = Some(position);
    set_text(view, &entries[position]);
}

/// Down: within the text, a line down; on its last line, the next input,
/// and past the newest one, what was being typed.
pub fn down(view: &mut ViewState, engine: &Engine) {
    let rows = view.input.lines().len();
    if view.input.cursor().0 + 1 < rows {
        view.input.move_cursor(CursorMove::Down);
        return;
    }
    let Some(position) = view.recall.position else {
        return;
    };
    let entries = history(view, engine);
    if position + 1 < entries.len() {
        view.recall.position = Some(position + 1);
        set_text(view, &entries[position + 1]);
    } else {
        view.recall.position = None;
        let draft = std::mem::take(&mut view.recall.draft);
        set_text(view, &draft);
    }
}

/// Insert a newline at the cursor.
pub fn newline(view: &mut ViewState) {
    view.input.insert_newline();
}

/// Pasted text as it goes into the input: line ends made `\n` (terminals
/// send `\r`), control characters other than newline and tab dropped (a
/// paste may hold escape sequences).
pub fn clean_paste(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    text.chars()
        .map(|c| if c == '\r' { '\n' } else { c })
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
        .collect()
}

/// A bracketed paste: inserted at the cursor in one operation, focusing
/// the input. Ignored while an overlay or a prompt has the keys. A notice
/// when the input now holds more than `[ui] max_input`.
pub fn paste(text: &str, view: &mut ViewState) -> Option<(String, bool)> {
    let prompt_open = view.lifecycle.prompt.is_some()
        || view.rename.is_some()
        || view.confirm_delete.is_some()
        || view.picker.is_some();
    let overlay_open =
        view.help || view.waterfall.is_some() || view.citation.is_some() || view.search.is_some();
    if prompt_open || overlay_open {
        return None;
    }
    view.focus = Focus::Input;
    view.quit_armed = false;
    view.input.insert_str(clean_paste(text));
    let size = text_len(view);
    (size > view.max_input).then(|| {
        (
            format!(
                "the input holds {}, over [ui] max_input ({}): cut it down to send it",
                human_size(size),
                human_size(view.max_input)
            ),
            true,
        )
    })
}

/// The input's size in bytes, as it would be sent.
pub fn text_len(view: &ViewState) -> usize {
    let lines = view.input.lines();
    lines.iter().map(String::len).sum::<usize>() + lines.len().saturating_sub(1)
}

/// Why a text of `size` bytes is not sent, if it is over the limit.
pub fn refused(size: usize, max: usize) -> Option<String> {
    (size > max).then(|| {
        format!(
            "not sent: the message is {}, over [ui] max_input ({})",
            human_size(size),
            human_size(max)
        )
    })
}

/// "812 B", "1.2 KB", "3.4 MB" (decimal units, as the config writes them).
pub fn human_size(bytes: usize) -> String {
    // Sizes here stay far below f64's exact integer range.
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if bytes < 1000 {
        format!("{bytes} B")
    } else if bytes < 1_000_000 {
        format!("{:.1} KB", b / 1e3)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::engine::workspace::ConversationId;
    use crate::engine::{Command, Input};

    const C: ConversationId = ConversationId(1);

    fn setup() -> (ViewState, Engine) {
        crate::tui::test_view(&["default"])
    }

    fn ask(engine: &mut Engine, text: &str) {
        engine.handle(
            Input::Command(Command::Ask {
                conversation: C,
                text: text.into(),
                tag: None,
            }),
            Instant::now(),
        );
    }

    #[test]
    fn history_interleaves_commands_with_the_user_messages() {
        let (mut view, mut engine) = setup();
        remember_sent(&mut view, &engine, "/rag off".into());
        ask(&mut engine, "first");
        ask(&mut engine, "second (queued)");
        remember_sent(&mut view, &engine, "/chaos off".into());
        // Another conversation's lines are not this one's history.
        view.sent_lines.push(SentLine {
            conversation: ConversationId(2),
            after: 0,
            text: "elsewhere".into(),
        });
        assert_eq!(
            history(&view, &engine),
            ["/rag off", "first", "second (queued)", "/chaos off"]
        );
    }

    #[test]
    fn up_and_down_recall_on_the_first_and_last_line_and_keep_the_draft() {
        let (mut view, mut engine) = setup();
        ask(&mut engine, "one");
        ask(&mut engine, "two\nlines");
        set_text(&mut view, "draft");
        up(&mut view, &engine);
        assert_eq!(view.input.lines(), ["two", "lines"]);
        // The cursor is on the last line: up moves within the text first.
        up(&mut view, &engine);
        assert_eq!(view.input.lines(), ["two", "lines"]);
        assert_eq!(view.input.cursor().0, 0);
        up(&mut view, &engine);
        assert_eq!(view.input.lines(), ["one"]);
        // The oldest stays.
        up(&mut view, &engine);
        assert_eq!(view.input.lines(), ["one"]);
        down(&mut view, &engine);
        assert_eq!(view.input.lines(), ["two", "lines"]);
        down(&mut view, &engine);
        assert_eq!(view.input.lines(), ["draft"]);
        assert_eq!(view.recall.position, None);
        // Down with nothing recalled does nothing.
        down(&mut view, &engine);
        assert_eq!(view.input.lines(), ["draft"]);
    }

    #[test]
    fn a_paste_is_cleaned_inserted_at_once_and_never_sent() {
        let (mut view, _engine) = setup();
        view.focus = Focus::Chat;
        set_text(&mut view, "say: ");
        let notice = paste("a\r\nb\rc\x1b[31m\td", &mut view);
        assert_eq!(notice, None);
        assert_eq!(view.focus, Focus::Input);
        assert_eq!(view.input.lines(), ["say: a", "b", "c[31m\td"]);
        // Over the limit: said, kept.
        view.max_input = 10;
        let notice = paste("0123456789", &mut view).expect("a notice");
        assert!(
            notice.1 && notice.0.contains("over [ui] max_input (10 B)"),
            "{notice:?}"
        );
        assert_eq!(text_len(&view), text(&view).len());
    }

    #[test]
    fn a_paste_waits_while_a_prompt_or_an_overlay_has_the_keys() {
        let (mut view, _engine) = setup();
        view.help = true;
        assert_eq!(paste("x", &mut view), None);
        assert_eq!(view.input.lines(), [""]);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(1234), "1.2 KB");
        assert_eq!(human_size(3_400_000), "3.4 MB");
        assert_eq!(refused(10, 10), None);
        assert!(refused(11, 10).is_some_and(|m| m.contains("over [ui] max_input (10 B)")));
    }
}
