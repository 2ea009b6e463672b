//! The key handler: a key press and the current view -> changes to the view
//! and actions for the loop to carry out. Which key does what is not decided
//! here: `on_key` looks the key up in the binding table (`crate::keymap`,
//! held by the view) for the context keys go to, then dispatches on the
//! bound `keymap::Action`. No IO; the engine is only read, so every binding
//! is testable without a terminal.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::domain::Role;
use crate::engine::breaker::Force;
use crate::engine::command::{Line, parse_line};
use crate::engine::{Command, Engine};
use crate::keymap::{Action as Bound, Context};
use crate::ui::waterfall::{self, Back, Waterfall};
use crate::ui::{Citation, CitedIn, Focus, ViewState};

/// What the loop must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Engine(Command),
    /// A message for the status line.
    Notice(String, bool),
    /// Switch the knowledge base the local retriever searches.
    KbUse(String),
    /// Search the knowledge base in use and show what it finds.
    /// Delete the session the confirmation names.
    ConfirmDelete,
    /// Rename a session (picked in the picker) to this name.
    RenameSession(i64, String),
    /// A `/session` command: the loop runs it against the session database.
    Session(crate::engine::command::SessionLine),
    KbSearch(String),
    /// Write the trace so far to FILE (or a new file here).
    TraceExport {
        file: Option<String>,
        redact: bool,
    },
    /// List this directory (off the loop) for Tab completion, then
    /// complete again.
    ListDir(std::path::PathBuf),
    /// Copy this (`y`): the loop writes it to the clipboard or the terminal.
    Copy(Result<super::copy::Copied, String>),
    Quit,
}

const PAGE: usize = 10;

pub fn on_key(key: KeyEvent, view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    if let Some(actions) = modal(key, view) {
        return actions;
    }
    let context = view.key_context();
    // Shift-Enter arrives as Enter with Shift where the terminal reports
    // it (keyboard enhancement); the table ignores Shift, so it is read
    // here: a newline, like Alt-Enter.
    if context == Context::Input
        && key.code == KeyCode::Enter
        && key.modifiers.contains(KeyModifiers::SHIFT)
    {
        view.quit_armed = false;
        super::input::newline(view);
        return Vec::new();
    }
    let bound = view.keymap.action_for(context, key);
    if bound != Some(Bound::Interrupt) {
        view.quit_armed = false;
    }
    let Some(bound) = bound else {
        // Unbound keys edit the input line, and do nothing elsewhere.
        if context == Context::Input {
            view.input.input(key);
        }
        return Vec::new();
    };
    match bound {
        Bound::Interrupt => return ctrl_c(view, engine),
        Bound::FocusNext if context == Context::Input => return tab(view, engine, true),
        Bound::FocusNext => view.focus = view.focus.next(),
        Bound::Newline => super::input::newline(view),
        Bound::HistoryPrev => super::input::up(view, engine),
        Bound::HistoryNext => super::input::down(view, engine),
        Bound::SelectPrev | Bound::SelectNext => select_message(bound, view, engine),
        Bound::Copy => return vec![Action::Copy(super::copy::what(context, view, engine))],
        Bound::FocusPrev => view.focus = view.focus.prev(),
        Bound::Help => view.help = true,
        Bound::Close => close_overlay(context, view),
        Bound::Submit => return submit(view, engine),
        Bound::FocusChat => view.focus = Focus::Chat,
        Bound::FocusInput => view.focus = Focus::Input,
        Bound::StartCommand => {
            view.focus = Focus::Input;
            view.input.insert_char('/');
        }
        Bound::Quit => return vec![Action::Quit],
        Bound::Zoom => view.zoom = !view.zoom,
        Bound::ScrollUp
        | Bound::ScrollDown
        | Bound::PageUp
        | Bound::PageDown
        | Bound::Top
        | Bound::Bottom => scroll(Move::of(bound), context, view, engine),
        Bound::OpenCitation(number) => return open_citation(number, context, view, engine),
        Bound::PrevScenario | Bound::NextScenario | Bound::Regenerate | Bound::Export => {
            return scenario_action(bound, view, engine);
        }
        Bound::OpenDetail | Bound::CancelRequest | Bound::ToggleBreaker => {
            return lifecycle_action(bound, view, engine);
        }
        Bound::OpenPipeline => return open_pipeline(context, view, engine),
        Bound::ReturnFromPipeline => {
            if let Some(Waterfall {
                back: Some(back), ..
            }) = view.waterfall.take()
            {
                view.focus = back.focus;
                view.lifecycle_selected = back.lifecycle_selected;
            }
        }
        Bound::Filter => {
            let typed = view
                .lifecycle
                .filter
                .as_ref()
                .map_or_else(String::new, |f| f.text.clone());
            view.lifecycle.prompt = Some(typed);
        }
        Bound::CycleSort => {
            view.lifecycle.cycle_sort();
            view.lifecycle_selected = 0;
        }
        Bound::InvertSort => {
            view.lifecycle.invert();
            view.lifecycle_selected = 0;
        }
        Bound::Pause => view.lifecycle.toggle_pause(engine, Instant::now()),
        Bound::OpenPassage => {
            if let Some(search) = &mut view.search
                && search.selected_passage().is_some()
            {
                search.opened = true;
                search.passage_scroll = 0;
            }
        }
        Bound::Resend => {
            return vec![Action::Engine(Command::ResendUnsent {
                conversation: view.current,
            })];
        }
        Bound::Sessions => {
            view.picker = Some(crate::ui::SessionPicker::default());
            return vec![Action::Session(crate::engine::command::SessionLine::List)];
        }
    }
    Vec::new()
}

/// The delete confirmation and the session picker take every key while
/// they are open.
fn modal(key: KeyEvent, view: &mut ViewState) -> Option<Vec<Action>> {
    if let Some(typed) = &mut view.lifecycle.prompt {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => view.lifecycle.prompt = None,
            KeyCode::Char('c') if ctrl => view.lifecycle.prompt = None,
            KeyCode::Char('u') if ctrl => typed.clear(),
            KeyCode::Backspace => {
                typed.pop();
            }
            KeyCode::Enter => {
                let typed = std::mem::take(typed);
                view.lifecycle.prompt = None;
                view.lifecycle.set_filter(&typed);
                view.lifecycle_selected = 0;
            }
            KeyCode::Char(ch) if !ctrl => typed.push(ch),
            _ => {}
        }
        return Some(Vec::new());
    }
    if let Some((id, _, typed)) = &mut view.rename {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => view.rename = None,
            KeyCode::Backspace => {
                typed.pop();
            }
            KeyCode::Enter => {
                let (id, name) = (*id, typed.trim().to_owned());
                view.rename = None;
                if !name.is_empty() {
                    return Some(vec![Action::RenameSession(id, name)]);
                }
            }
            KeyCode::Char(ch) if !ctrl => typed.push(ch),
            _ => {}
        }
        return Some(Vec::new());
    }
    if let Some((_, name)) = &view.confirm_delete {
        let yes = matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y'));
        if yes {
            return Some(vec![Action::ConfirmDelete]);
        }
        let kept = format!("kept session {name:?}");
        view.confirm_delete = None;
        return Some(vec![Action::Notice(kept, false)]);
    }
    let picker = view.picker.as_mut()?;
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Esc => view.picker = None,
        KeyCode::Up => picker.selected = picker.selected.saturating_sub(1),
        KeyCode::Down => picker.selected = picker.selected.saturating_add(1),
        KeyCode::Backspace => {
            picker.filter.pop();
            picker.selected = 0;
        }
        KeyCode::Enter => {
            let chosen = view.picker.as_ref().and_then(|p| p.chosen().cloned());
            view.picker = None;
            if let Some(s) = chosen {
                return Some(vec![Action::Session(
                    crate::engine::command::SessionLine::Open(s.name),
                )]);
            }
        }
        KeyCode::Char('d') if ctrl => {
            let chosen = picker.chosen().cloned();
            view.picker = None;
            if let Some(s) = chosen {
                view.confirm_delete = Some((s.id, s.name));
            }
        }
        KeyCode::Char('r') if ctrl => {
            let chosen = picker.chosen().cloned();
            view.picker = None;
            if let Some(s) = chosen {
                view.rename = Some((s.id, s.name.clone(), s.name));
            }
        }
        KeyCode::Char(ch) if !ctrl => {
            picker.filter.push(ch);
            picker.selected = 0;
        }
        _ => {}
    }
    Some(Vec::new())
}

fn ctrl_c(view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    let running = engine
        .conversation(view.current)
        .is_some_and(|c| c.running.is_some());
    if running {
        view.quit_armed = false;
        return vec![Action::Engine(Command::CancelRunning {
            conversation: view.current,
        })];
    }
    if view.quit_armed {
        return vec![Action::Quit];
    }
    view.quit_armed = true;
    Vec::new()
}

fn close_overlay(context: Context, view: &mut ViewState) {
    match context {
        Context::Help => {
            view.help = false;
            view.help_scroll = 0;
        }
        // Back to the table, where the pipeline's root is selected.
        Context::Detail => view.waterfall = None,
        Context::Citation => view.citation = None,
        // Back from an open passage to the results, else close them.
        Context::Search => match &mut view.search {
            Some(search) if search.opened => search.opened = false,
            _ => view.search = None,
        },
        _ => {}
    }
}

/// A move along something that scrolls or a selection; 0 is the top.
#[derive(Debug, Clone, Copy)]
enum Move {
    Up(usize),
    Down(usize),
    Top,
    Bottom,
}

impl Move {
    fn of(action: Bound) -> Self {
        match action {
            Bound::ScrollUp => Move::Up(1),
            Bound::PageUp => Move::Up(PAGE),
            Bound::ScrollDown => Move::Down(1),
            Bound::PageDown => Move::Down(PAGE),
            Bound::Top => Move::Top,
            _ => Move::Bottom,
        }
    }

    /// `pos` moved, within `0..=max`.
    fn apply(self, pos: usize, max: usize) -> usize {
        let pos = pos.min(max);
        match self {
            Move::Up(n) => pos.saturating_sub(n),
            Move::Down(n) => pos.saturating_add(n).min(max),
            Move::Top => 0,
            Move::Bottom => max,
        }
    }
}

/// Scroll the pane of `context` by `lines`, as its arrow keys do (the mouse
/// wheel).
pub(super) fn scroll_lines(
    context: Context,
    up: bool,
    lines: usize,
    view: &mut ViewState,
    engine: &Engine,
) {
    let step = if up {
        Move::Up(lines)
    } else {
        Move::Down(lines)
    };
    scroll(step, context, view, engine);
}

fn scroll(step: Move, context: Context, view: &mut ViewState, engine: &Engine) {
    match context {
        Context::Help => {
            view.help_scroll = step.apply(view.help_scroll, view.help_max_scroll.get());
        }
        Context::Chat => {
            // The chat counts its scroll up from the newest line.
            let max = view.chat_max_scroll.get();
            let from_top = max - view.chat_scroll.min(max);
            view.chat_scroll = max - step.apply(from_top, max);
        }
        Context::Scenarios if view.current_scenario(engine).is_some() => {
            let max = view.scenario_max_scroll.get();
            view.scenario_scroll = step.apply(view.scenario_scroll, max);
        }
        Context::Detail => {
            if let Some(open) = &mut view.waterfall {
                let last = waterfall::bar_count(engine, open.root).saturating_sub(1);
                open.selected = step.apply(open.selected, last);
            }
        }
        Context::Lifecycle => {
            let last = view
                .lifecycle
                .count(engine, Instant::now())
                .saturating_sub(1);
            view.lifecycle_selected = step.apply(view.lifecycle_selected, last);
        }
        // An open passage scrolls; the results move the selection.
        Context::Search => {
            let max = view.passage_max_scroll.get();
            if let Some(search) = &mut view.search {
                if search.opened {
                    search.passage_scroll = step.apply(search.passage_scroll, max);
                } else {
                    let last = search.passages().len().saturating_sub(1);
                    search.selected = step.apply(search.selected, last);
                }
            }
        }
        _ => {}
    }
}

/// A digit: open citation `[number]` of what the pane shows, or switch the
/// open passage overlay to it.
fn open_citation(
    number: u8,
    context: Context,
    view: &mut ViewState,
    engine: &Engine,
) -> Vec<Action> {
    let number = usize::from(number);
    let source = match context {
        Context::Citation => view.citation.map(|open| open.source),
        // The newest reply that has passages to cite.
        Context::Chat => engine.conversation(view.current).and_then(|c| {
            c.messages
                .iter()
                .rposition(|m| !m.passages.is_empty())
                .map(|index| CitedIn::Message {
                    conversation: view.current,
                    index,
                })
        }),
        Context::Scenarios => view.current_scenario(engine).map(CitedIn::Scenario),
        _ => return Vec::new(),
    };
    match source {
        Some(source) => {
            view.citation = Some(Citation { source, number });
            Vec::new()
        }
        None => vec![Action::Notice("nothing here cites any lore".into(), true)],
    }
}

/// `w` in the chat or the scenarios: open the waterfall of the pipeline
/// behind the lowest reply on screen, or the shown scenario. Focus moves to
/// the lifecycle pane with the pipeline's root selected (when the table
/// shows it); the return key comes back here.
fn open_pipeline(context: Context, view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    let request = match context {
        Context::Chat => chat_reply_request(view, engine),
        Context::Scenarios => view
            .current_scenario(engine)
            .and_then(|i| engine.scenarios().get(i))
            .map(|s| s.request),
        _ => None,
    };
    let Some(id) = request else {
        let what = if context == Context::Chat {
            "no reply here to trace"
        } else {
            "no scenario here to trace"
        };
        return vec![Action::Notice(what.into(), true)];
    };
    let Some(root) = waterfall::root_of(engine, id) else {
        return vec![Action::Notice(
            "its requests are no longer in the lifecycle history".into(),
            true,
        )];
    };
    let back = Back {
        focus: view.focus,
        lifecycle_selected: view.lifecycle_selected,
    };
    if let Some(row) = view.lifecycle.position(engine, root.id, Instant::now()) {
        view.lifecycle_selected = row;
    }
    view.focus = Focus::Lifecycle;
    view.waterfall = Some(Waterfall {
        root: root.id,
        selected: 0,
        back: Some(back),
    });
    Vec::new()
}

/// The request behind the selected message (a question: the reply that
/// answers it), else behind the lowest reply the chat shows (the newest
/// reply when the chat has not been drawn yet), if it has one.
fn chat_reply_request(
    view: &ViewState,
    engine: &Engine,
) -> Option<crate::engine::request::RequestId> {
    let messages = &engine.conversation(view.current)?.messages;
    if let Some(selected) = view.chat_selected.filter(|&i| i < messages.len()) {
        return messages[selected..]
            .iter()
            .take(2)
            .find(|m| m.role == Role::Assistant)
            .and_then(|m| m.request);
    }
    let shown = view
        .chat_cache
        .try_borrow()
        .map(|cache| cache.shown())
        .unwrap_or_default();
    let reply = |m: &&crate::engine::workspace::ChatMessage| {
        m.role == Role::Assistant && m.request.is_some()
    };
    let on_screen = messages
        .get(shown.start.min(messages.len())..shown.end.min(messages.len()))
        .unwrap_or_default();
    on_screen
        .iter()
        .rev()
        .find(reply)
        .or_else(|| {
            // Not drawn yet, or no reply on screen: the newest reply above.
            messages[..shown.end.min(messages.len())]
                .iter()
                .rev()
                .find(reply)
        })
        .or_else(|| messages.iter().rev().find(reply))
        .and_then(|m| m.request)
}

/// Tab in the input: complete a slash command, else move the focus.
/// `may_list`: a missing directory listing may be asked for (not again
/// after one came back).
pub fn tab(view: &mut ViewState, engine: &Engine, may_list: bool) -> Vec<Action> {
    use super::complete::Completion;
    match super::complete::complete_input(view, engine) {
        Completion::NotApplicable if may_list => view.focus = view.focus.next(),
        Completion::NotApplicable | Completion::Done => {}
        Completion::Candidates(names) => {
            let shown: Vec<String> = names.iter().take(12).cloned().collect();
            let more = names.len().saturating_sub(shown.len());
            let mut text = shown.join("  ");
            if more > 0 {
                text.push_str(&format!("  (+{more})"));
            }
            return vec![Action::Notice(text, false)];
        }
        Completion::NeedDir(dir) if may_list => return vec![Action::ListDir(dir)],
        Completion::NeedDir(_) => {}
    }
    Vec::new()
}

/// Up/Down in the chat: select the message above or below (from none,
/// Up selects the newest); Down past the newest clears the selection and
/// follows the newest again. The chat scrolls to show the selected one.
fn select_message(action: Bound, view: &mut ViewState, engine: &Engine) {
    let count = engine
        .conversation(view.current)
        .map_or(0, |c| c.messages.len());
    let Some(last) = count.checked_sub(1) else {
        view.chat_selected = None;
        return;
    };
    view.chat_selected = match (action, view.chat_selected) {
        (Bound::SelectPrev, None) => Some(last),
        (Bound::SelectPrev, Some(i)) => Some(i.min(last).saturating_sub(1)),
        (_, Some(i)) if i < last => Some(i + 1),
        _ => None,
    };
    match view.chat_selected {
        Some(i) => {
            if let Ok(cache) = view.chat_cache.try_borrow() {
                view.chat_scroll = cache.scroll_showing(i, view.chat_scroll);
            }
        }
        None => view.chat_scroll = 0,
    }
}

fn submit(view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    let text = super::input::text(view);
    if let Some(why) = super::input::refused(text.len(), view.max_input) {
        return vec![Action::Notice(why, true)];
    }
    let parsed = match parse_line(&text) {
        Ok(Some(line)) => line,
        Ok(None) => return Vec::new(),
        // Keep the text so it can be fixed.
        Err(message) => return vec![Action::Notice(message, true)],
    };
    view.reset_input();
    view.recall = super::input::Recall::default();
    if !matches!(parsed, Line::Ask(_)) {
        super::input::remember_sent(view, engine, text.trim().to_owned());
    }
    let action = match parsed {
        Line::Ask(text) => {
            view.chat_scroll = 0;
            view.chat_selected = None;
            Action::Engine(Command::Ask {
                conversation: view.current,
                text,
                tag: None,
            })
        }
        Line::Scenario { prompt, seed } => {
            view.scenario_selected = None;
            view.scenario_scroll = 0;
            Action::Engine(Command::Scenario {
                conversation: view.current,
                prompt,
                seed,
            })
        }
        Line::Regenerate => match view.current_scenario(engine) {
            Some(scenario) => {
                view.scenario_selected = None;
                view.scenario_scroll = 0;
                Action::Engine(Command::Regenerate { scenario })
            }
            None => Action::Notice("no scenario to regenerate yet".into(), true),
        },
        Line::Export => match view.current_scenario(engine) {
            Some(scenario) => Action::Engine(Command::Export { scenario }),
            None => Action::Notice("no scenario to export yet".into(), true),
        },
        Line::Cancel(Some(id)) => Action::Engine(Command::Cancel { id }),
        Line::Cancel(None) => Action::Engine(Command::CancelRunning {
            conversation: view.current,
        }),
        Line::ClearQueue => Action::Engine(Command::ClearQueue {
            conversation: view.current,
        }),
        Line::Rag(on) => Action::Engine(Command::SetRag(on)),
        Line::KbAdd(paths) => Action::Engine(Command::KbAdd { paths }),
        Line::KbUse(name) => Action::KbUse(name),
        Line::KbSearch(query) => Action::KbSearch(query),
        Line::Session(line) => Action::Session(line),
        Line::TraceExport { file, redact } => Action::TraceExport { file, redact },
        Line::Resend => Action::Engine(Command::ResendUnsent {
            conversation: view.current,
        }),
        Line::CancelQueued(number) => Action::Engine(Command::CancelQueued {
            conversation: view.current,
            number,
        }),
        Line::Chaos { backend, mode } => Action::Engine(Command::Chaos { backend, mode }),
        Line::Breaker { backend, force } => {
            Action::Engine(Command::ForceBreaker { backend, force })
        }
        Line::Help => {
            view.help = true;
            return Vec::new();
        }
        Line::Quit => Action::Quit,
    };
    vec![action]
}

fn scenario_action(action: Bound, view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    let Some(current) = view.current_scenario(engine) else {
        return Vec::new();
    };
    let (first, last) = (engine.scenarios().first(), engine.scenarios().end() - 1);
    match action {
        Bound::PrevScenario => {
            view.scenario_selected = Some(current.saturating_sub(1).max(first));
            view.scenario_scroll = 0;
        }
        Bound::NextScenario => {
            view.scenario_selected = Some((current + 1).min(last));
            view.scenario_scroll = 0;
        }
        Bound::Regenerate => {
            view.scenario_selected = None;
            view.scenario_scroll = 0;
            return vec![Action::Engine(Command::Regenerate { scenario: current })];
        }
        Bound::Export => return vec![Action::Engine(Command::Export { scenario: current })],
        _ => {}
    }
    Vec::new()
}

fn lifecycle_action(action: Bound, view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    // Only the selected row is looked up: the cost does not grow with the
    // retained history.
    let now = Instant::now();
    let count = view.lifecycle.count(engine, now);
    view.lifecycle_selected = view.lifecycle_selected.min(count.saturating_sub(1));
    let Some(row) = view.lifecycle.row(engine, view.lifecycle_selected, now) else {
        return Vec::new();
    };
    match action {
        Bound::OpenDetail => {
            if let Some(root) = waterfall::root_of(engine, row.id) {
                let selected = waterfall::bar_index(engine, root.id, row.id).unwrap_or(0);
                view.waterfall = Some(Waterfall {
                    root: root.id,
                    selected,
                    back: None,
                });
            }
        }
        Bound::ToggleBreaker => {
            let Some(backend) = engine.backends().get(&*row.backend) else {
                return vec![Action::Notice(
                    "select a row with a backend (not a pipeline)".into(),
                    true,
                )];
            };
            // auto -> forced open -> forced closed -> auto
            let force = match backend.breaker.force() {
                Force::Auto => Force::Open,
                Force::Open => Force::Closed,
                Force::Closed => Force::Auto,
            };
            return vec![Action::Engine(Command::ForceBreaker {
                backend: row.backend.to_string(),
                force,
            })];
        }
        Bound::CancelRequest if row.phase.is_final() => {
            return vec![Action::Notice(
                "that request has already ended".into(),
                true,
            )];
        }
        Bound::CancelRequest => {
            return vec![Action::Engine(Command::Cancel {
                id: row.id.to_string(),
            })];
        }
        _ => {}
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crossterm::event::{KeyCode, KeyModifiers};

    use super::*;
    use crate::engine::workspace::ConversationId;

    const C: ConversationId = ConversationId(1);

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn setup() -> (ViewState, Engine) {
        crate::tui::test_view(&["default"])
    }

    fn type_text(view: &mut ViewState, engine: &Engine, text: &str) {
        for c in text.chars() {
            assert!(on_key(key(KeyCode::Char(c)), view, engine).is_empty());
        }
    }

    #[test]
    fn typing_and_enter_submit_a_question_then_clear_the_input() {
        let (mut view, engine) = setup();
        type_text(&mut view, &engine, "who guards the waystone?");
        let actions = on_key(key(KeyCode::Enter), &mut view, &engine);
        assert_eq!(
            actions,
            vec![Action::Engine(Command::Ask {
                conversation: C,
                text: "who guards the waystone?".into(),
                tag: None,
            })]
        );
        assert_eq!(view.input.lines(), [""]);
    }

    #[test]
    fn q_types_in_the_input_but_quits_from_a_pane() {
        let (mut view, engine) = setup();
        assert!(on_key(key(KeyCode::Char('q')), &mut view, &engine).is_empty());
        assert_eq!(view.input.lines(), ["q"]);
        on_key(key(KeyCode::Tab), &mut view, &engine);
        assert_eq!(view.focus, Focus::Chat);
        assert_eq!(
            on_key(key(KeyCode::Char('q')), &mut view, &engine),
            vec![Action::Quit]
        );
    }

    #[test]
    fn tab_cycles_focus_both_ways() {
        let (mut view, engine) = setup();
        let mut seen = vec![view.focus];
        for _ in 0..4 {
            on_key(key(KeyCode::Tab), &mut view, &engine);
            seen.push(view.focus);
        }
        assert_eq!(
            seen,
            vec![
                Focus::Input,
                Focus::Chat,
                Focus::Scenarios,
                Focus::Lifecycle,
                Focus::Input
            ]
        );
        on_key(key(KeyCode::BackTab), &mut view, &engine);
        assert_eq!(view.focus, Focus::Lifecycle);
    }

    #[test]
    fn ctrl_c_twice_quits_when_nothing_runs() {
        let (mut view, engine) = setup();
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(on_key(ctrl_c, &mut view, &engine).is_empty());
        assert!(view.quit_armed);
        assert_eq!(on_key(ctrl_c, &mut view, &engine), vec![Action::Quit]);
        // Another key in between disarms it.
        let (mut view, engine) = setup();
        on_key(ctrl_c, &mut view, &engine);
        on_key(key(KeyCode::Char('x')), &mut view, &engine);
        assert!(on_key(ctrl_c, &mut view, &engine).is_empty());
    }

    #[test]
    fn help_opens_with_f1_or_question_mark_in_a_pane_and_closes_with_esc() {
        let (mut view, engine) = setup();
        on_key(key(KeyCode::F(1)), &mut view, &engine);
        assert!(view.help);
        on_key(key(KeyCode::Esc), &mut view, &engine);
        assert!(!view.help);
        on_key(key(KeyCode::Char('?')), &mut view, &engine);
        assert!(!view.help, "? is text in the input");
        view.focus = Focus::Lifecycle;
        on_key(key(KeyCode::Char('?')), &mut view, &engine);
        assert!(view.help);
    }

    #[test]
    fn bad_commands_keep_the_text_and_say_why() {
        let (mut view, engine) = setup();
        type_text(&mut view, &engine, "/frob");
        let actions = on_key(key(KeyCode::Enter), &mut view, &engine);
        assert!(matches!(&actions[..], [Action::Notice(m, true)] if m.contains("/frob")));
        assert_eq!(view.input.lines(), ["/frob"]);
    }

    fn with(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn every_documented_command_parses_and_so_do_its_aliases() {
        for command in crate::keymap::COMMANDS {
            let parsed = parse_line(command.example);
            assert!(
                matches!(parsed, Ok(Some(ref line)) if !matches!(line, Line::Ask(_)) || command.syntax.starts_with("/ask")),
                "{}: {parsed:?}",
                command.example
            );
            let name = command.example.split_whitespace().next().unwrap_or("");
            for alias in command.aliases {
                let aliased = command.example.replacen(name, alias, 1);
                assert_eq!(parse_line(&aliased), parsed, "{aliased}");
            }
            assert!(
                command.syntax.starts_with(name),
                "{} does not start with {name}",
                command.syntax
            );
        }
    }

    #[test]
    fn a_slash_from_a_pane_starts_a_command() {
        let (mut view, engine) = setup();
        view.focus = Focus::Scenarios;
        on_key(key(KeyCode::Char('/')), &mut view, &engine);
        assert_eq!(view.focus, Focus::Input);
        assert_eq!(view.input.lines(), ["/"]);
        on_key(key(KeyCode::Esc), &mut view, &engine);
        assert_eq!(view.focus, Focus::Chat);
        on_key(key(KeyCode::Char('i')), &mut view, &engine);
        assert_eq!(view.focus, Focus::Input);
    }

    #[test]
    fn help_scrolls_within_the_limit_the_last_draw_found() {
        let (mut view, engine) = setup();
        on_key(key(KeyCode::F(1)), &mut view, &engine);
        view.help_max_scroll.set(15);
        let mut press = |code| {
            on_key(key(code), &mut view, &engine);
            view.help_scroll
        };
        assert_eq!(press(KeyCode::Char('j')), 1);
        assert_eq!(press(KeyCode::PageDown), 11);
        assert_eq!(press(KeyCode::PageDown), 15);
        assert_eq!(press(KeyCode::Down), 15);
        assert_eq!(press(KeyCode::Up), 14);
        assert_eq!(press(KeyCode::Home), 0);
        assert_eq!(press(KeyCode::Char('G')), 15);
        // Tab does nothing in an overlay; q closes it and forgets the scroll.
        assert_eq!(press(KeyCode::Tab), 15);
        assert_eq!(press(KeyCode::Char('q')), 0);
        assert!(!view.help);
        assert_eq!(view.focus, Focus::Input);
    }

    #[test]
    fn chat_scroll_counts_up_from_the_newest_line() {
        let (mut view, engine) = setup();
        view.focus = Focus::Chat;
        view.chat_max_scroll.set(20);
        let mut press = |code| {
            on_key(key(code), &mut view, &engine);
            view.chat_scroll
        };
        assert_eq!(press(KeyCode::Char('j')), 0);
        assert_eq!(press(KeyCode::Char('k')), 1);
        assert_eq!(press(KeyCode::Char('k')), 2);
        assert_eq!(press(KeyCode::PageUp), 12);
        assert_eq!(press(KeyCode::PageUp), 20);
        assert_eq!(press(KeyCode::Char('j')), 19);
        assert_eq!(press(KeyCode::End), 0);
        assert_eq!(press(KeyCode::Char('g')), 20);
    }

    #[test]
    fn digits_open_citations_only_where_something_cites() {
        let (mut view, engine) = setup();
        view.focus = Focus::Chat;
        let actions = on_key(key(KeyCode::Char('3')), &mut view, &engine);
        assert!(
            matches!(&actions[..], [Action::Notice(m, true)] if m.contains("cites")),
            "{actions:?}"
        );
        view.focus = Focus::Lifecycle;
        assert!(on_key(key(KeyCode::Char('3')), &mut view, &engine).is_empty());
        // With a passage open, a digit switches it.
        view.citation = Some(Citation {
            source: CitedIn::Message {
                conversation: C,
                index: 0,
            },
            number: 1,
        });
        assert!(on_key(key(KeyCode::Char('4')), &mut view, &engine).is_empty());
        assert_eq!(view.citation.map(|c| c.number), Some(4));
        on_key(key(KeyCode::Enter), &mut view, &engine);
        assert_eq!(view.citation, None);
    }

    #[test]
    fn held_ctrl_or_alt_does_not_hide_a_plain_key() {
        let (mut view, engine) = setup();
        view.focus = Focus::Chat;
        view.chat_max_scroll.set(5);
        on_key(
            with(KeyCode::Char('k'), KeyModifiers::ALT),
            &mut view,
            &engine,
        );
        assert_eq!(view.chat_scroll, 1);
        // Ctrl-J, Alt-Enter and Shift-Enter break the line; Enter sends
        // the lines joined with newlines; Ctrl-A is the text area's.
        view.focus = Focus::Input;
        type_text(&mut view, &engine, "hi");
        for newline in [
            with(KeyCode::Char('j'), KeyModifiers::CONTROL),
            with(KeyCode::Enter, KeyModifiers::ALT),
            with(KeyCode::Enter, KeyModifiers::SHIFT),
        ] {
            assert!(on_key(newline, &mut view, &engine).is_empty());
        }
        type_text(&mut view, &engine, "there");
        assert_eq!(view.input.lines(), ["hi", "", "", "there"]);
        let actions = on_key(key(KeyCode::Enter), &mut view, &engine);
        assert_eq!(
            actions,
            vec![Action::Engine(Command::Ask {
                conversation: C,
                text: "hi\n\n\nthere".into(),
                tag: None,
            })]
        );
        assert!(
            on_key(
                with(KeyCode::Char('a'), KeyModifiers::CONTROL),
                &mut view,
                &engine
            )
            .is_empty()
        );
        assert_eq!(view.input.lines(), [""]);
    }

    #[test]
    fn lifecycle_keys_need_a_row() {
        let (mut view, engine) = setup();
        view.focus = Focus::Lifecycle;
        view.lifecycle_selected = 7;
        for code in [
            KeyCode::Enter,
            KeyCode::Char('c'),
            KeyCode::Char('b'),
            KeyCode::Down,
        ] {
            assert!(on_key(key(code), &mut view, &engine).is_empty());
        }
        assert!(view.waterfall.is_none());
        assert_eq!(view.lifecycle_selected, 0);
    }

    fn typed(view: &mut ViewState, engine: &Engine, text: &str) {
        for ch in text.chars() {
            assert!(on_key(key(KeyCode::Char(ch)), view, engine).is_empty());
        }
    }

    #[test]
    fn f_opens_a_filter_prompt_that_takes_every_key_until_enter_or_esc() {
        let (mut view, engine) = setup();
        view.focus = Focus::Lifecycle;
        view.lifecycle_selected = 3;
        on_key(key(KeyCode::Char('f')), &mut view, &engine);
        assert_eq!(view.lifecycle.prompt.as_deref(), Some(""));
        // q, / and space are text here, not quit, command or pause.
        typed(&mut view, &engine, "state:timed-out q/x");
        on_key(key(KeyCode::Backspace), &mut view, &engine);
        assert_eq!(view.lifecycle.prompt.as_deref(), Some("state:timed-out q/"));
        assert_eq!(view.focus, Focus::Lifecycle);
        assert!(!view.lifecycle.is_paused());
        on_key(key(KeyCode::Enter), &mut view, &engine);
        assert!(view.lifecycle.prompt.is_none());
        let applied = view.lifecycle.filter.as_ref().map(|f| f.text.clone());
        assert_eq!(applied.as_deref(), Some("state:timed-out q/"));
        assert_eq!(view.lifecycle_selected, 0);

        // Reopened, it starts from the filter in force; Esc keeps that one.
        on_key(key(KeyCode::Char('f')), &mut view, &engine);
        assert_eq!(view.lifecycle.prompt.as_deref(), Some("state:timed-out q/"));
        typed(&mut view, &engine, " late");
        on_key(key(KeyCode::Esc), &mut view, &engine);
        assert!(view.lifecycle.prompt.is_none());
        let kept = view.lifecycle.filter.as_ref().map(|f| f.text.clone());
        assert_eq!(kept.as_deref(), Some("state:timed-out q/"));
        assert_eq!(view.focus, Focus::Lifecycle);

        // An empty filter clears it.
        on_key(key(KeyCode::Char('f')), &mut view, &engine);
        for _ in 0..30 {
            on_key(key(KeyCode::Backspace), &mut view, &engine);
        }
        on_key(key(KeyCode::Enter), &mut view, &engine);
        assert!(view.lifecycle.filter.is_none());
    }

    #[test]
    fn s_cycles_the_sort_r_inverts_it_and_space_pauses_and_resumes() {
        use crate::ui::SortBy;
        let (mut view, engine) = setup();
        // Only in the lifecycle pane: in the input they are text.
        on_key(key(KeyCode::Char('s')), &mut view, &engine);
        assert_eq!(view.lifecycle.sort, SortBy::Pipeline);
        view.focus = Focus::Lifecycle;
        on_key(key(KeyCode::Char('s')), &mut view, &engine);
        assert_eq!(view.lifecycle.sort, SortBy::Elapsed);
        on_key(key(KeyCode::Char('s')), &mut view, &engine);
        assert_eq!(view.lifecycle.sort, SortBy::State);
        assert!(!view.lifecycle.inverted);
        on_key(key(KeyCode::Char('r')), &mut view, &engine);
        assert!(view.lifecycle.inverted);
        on_key(key(KeyCode::Char(' ')), &mut view, &engine);
        assert!(view.lifecycle.is_paused());
        assert_eq!(view.lifecycle.new_since_pause(&engine), Some(0));
        on_key(key(KeyCode::Char(' ')), &mut view, &engine);
        assert!(!view.lifecycle.is_paused());
        assert_eq!(view.lifecycle.new_since_pause(&engine), None);
        // Changing the sort resumes following.
        on_key(key(KeyCode::Char(' ')), &mut view, &engine);
        on_key(key(KeyCode::Char('s')), &mut view, &engine);
        assert!(!view.lifecycle.is_paused());
        assert_eq!(view.lifecycle.sort, SortBy::Kind);
    }

    /// The search overlay opened by `/kb search QUERY`, with what the
    /// sample lore finds for it.
    fn searched(view: &mut ViewState, engine: &Engine, query: &str) -> usize {
        type_text(view, engine, &format!("/kb search {query}"));
        let actions = on_key(key(KeyCode::Enter), view, engine);
        assert_eq!(actions, vec![Action::KbSearch(query.into())]);
        assert_eq!(view.input.lines(), [""]);
        // What the loop does with the action: open, search, show.
        let seq = view.open_search(query.into());
        assert_eq!(view.key_context(), Context::Search);
        let kb = crate::kb::KnowledgeBase::build(crate::kb::embedded_lore()).expect("lore");
        let passages = kb.search(query, crate::ui::SEARCH_TOP_K).expect("search");
        let n = passages.len();
        assert!(view.search_finished(crate::ui::SearchDone {
            seq,
            result: Ok(crate::ui::Found {
                kb: "sample".into(),
                passages,
            }),
        }));
        n
    }

    fn selected(view: &ViewState) -> usize {
        view.search.as_ref().map_or(usize::MAX, |s| s.selected)
    }

    fn press(view: &mut ViewState, engine: &Engine, code: KeyCode) {
        assert!(on_key(key(code), view, engine).is_empty(), "{code:?}");
    }

    fn passage_scroll(view: &ViewState) -> usize {
        view.search
            .as_ref()
            .map_or(usize::MAX, |s| s.passage_scroll)
    }

    #[test]
    fn search_results_move_open_a_passage_go_back_and_close() {
        let (mut view, engine) = setup();
        let n = searched(&mut view, &engine, "waystone");
        assert!(n > 3, "{n} passages");
        let (v, e) = (&mut view, &engine);
        press(v, e, KeyCode::Down);
        press(v, e, KeyCode::Char('j'));
        press(v, e, KeyCode::Char('k'));
        assert_eq!(selected(v), 1);
        press(v, e, KeyCode::End);
        assert_eq!(selected(v), n - 1);
        press(v, e, KeyCode::Down);
        assert_eq!(selected(v), n - 1, "stays on the last");
        press(v, e, KeyCode::Char('g'));
        press(v, e, KeyCode::Up);
        assert_eq!(selected(v), 0, "stays on the first");
        press(v, e, KeyCode::Down);
        // Tab and digits do nothing here; the input is not reachable.
        press(v, e, KeyCode::Tab);
        press(v, e, KeyCode::Char('3'));
        assert_eq!(v.focus, Focus::Input);
        assert_eq!(v.citation, None);
        assert_eq!(v.input.lines(), [""]);

        // Enter opens the selected passage; it scrolls within the last draw's limit.
        press(v, e, KeyCode::Enter);
        let search = v.search.as_ref().expect("open");
        assert!(search.opened);
        assert_eq!(
            search.selected_passage().map(|p| &p.id),
            search.passages().get(1).map(|p| &p.id)
        );
        v.passage_max_scroll.set(4);
        press(v, e, KeyCode::Char('j'));
        assert_eq!(passage_scroll(v), 1);
        press(v, e, KeyCode::PageDown);
        assert_eq!(passage_scroll(v), 4);
        press(v, e, KeyCode::Up);
        assert_eq!(passage_scroll(v), 3);
        assert_eq!(
            selected(v),
            1,
            "the selection stays while a passage scrolls"
        );
        // Esc goes back to the results, where the selection stayed.
        press(v, e, KeyCode::Esc);
        assert_eq!(v.search.as_ref().map(|s| s.opened), Some(false));
        assert_eq!(selected(v), 1);
        // Enter again opens it at the top; q goes back too.
        press(v, e, KeyCode::Enter);
        assert_eq!(v.search.as_ref().map(|s| s.opened), Some(true));
        assert_eq!(passage_scroll(v), 0);
        press(v, e, KeyCode::Char('q'));
        assert_eq!(v.search.as_ref().map(|s| s.opened), Some(false));
        // Esc in the results closes the overlay.
        press(v, e, KeyCode::Esc);
        assert!(v.search.is_none());
        assert_eq!(v.key_context(), Context::Input);
    }

    #[test]
    fn enter_opens_nothing_while_waiting_or_without_matches() {
        let (mut view, engine) = setup();
        view.open_search("waystone".into());
        on_key(key(KeyCode::Enter), &mut view, &engine);
        on_key(key(KeyCode::Down), &mut view, &engine);
        assert_eq!(view.key_context(), Context::Search);
        assert_eq!(selected(&view), 0);
        on_key(key(KeyCode::Esc), &mut view, &engine);
        assert!(view.search.is_none());
        let n = searched(&mut view, &engine, "xyzzyplugh");
        assert_eq!(n, 0);
        on_key(key(KeyCode::Enter), &mut view, &engine);
        assert_eq!(view.search.as_ref().map(|s| s.opened), Some(false));
        // q closes too.
        on_key(key(KeyCode::Char('q')), &mut view, &engine);
        assert!(view.search.is_none());
    }

    #[test]
    fn kb_search_without_a_query_keeps_the_line_and_says_how() {
        let (mut view, engine) = setup();
        type_text(&mut view, &engine, "/kb search ");
        let actions = on_key(key(KeyCode::Enter), &mut view, &engine);
        assert!(
            matches!(&actions[..], [Action::Notice(m, true)] if m.contains("/kb search QUERY")),
            "{actions:?}"
        );
        assert!(view.search.is_none());
    }

    // --- The waterfall and the jump to it ---

    /// Carry `input` through the engine the way the runtime would, at once:
    /// retrievals find nothing, generations write one token and finish.
    fn drive(engine: &mut Engine, input: crate::engine::Input) {
        use crate::engine::{Call, Effect, Input};
        let mut queue = engine.handle(input, Instant::now());
        while let Some(effect) = queue.pop() {
            let Effect::Dispatch { id, backend, call } = effect else {
                continue;
            };
            let next = match call {
                Call::Retrieve(_) => Input::Retrieved {
                    id,
                    backend,
                    result: Ok(Vec::new()),
                },
                Call::Generate(_) => {
                    engine.handle(
                        Input::Token {
                            id,
                            backend: backend.clone(),
                            text: "# The Ford\n\nA reply.".into(),
                        },
                        Instant::now(),
                    );
                    Input::Finished {
                        id,
                        backend,
                        result: Ok(()),
                    }
                }
                _ => continue,
            };
            queue.extend(engine.handle(next, Instant::now()));
        }
    }

    fn ask(engine: &mut Engine, text: &str) {
        drive(
            engine,
            crate::engine::Input::Command(Command::Ask {
                conversation: C,
                text: text.into(),
                tag: None,
            }),
        );
    }

    fn scenario(engine: &mut Engine, prompt: &str) {
        drive(
            engine,
            crate::engine::Input::Command(Command::Scenario {
                conversation: C,
                prompt: prompt.into(),
                seed: Some(3),
            }),
        );
    }

    /// The turn behind reply `n` (0 is the first reply).
    fn turn(engine: &Engine, n: usize) -> crate::engine::request::RequestId {
        engine
            .conversation(C)
            .into_iter()
            .flat_map(|c| c.messages.iter())
            .filter_map(|m| m.request)
            .nth(n)
            .expect("a reply with a request")
    }

    fn draw(view: &ViewState, engine: &Engine, width: u16, height: u16) {
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height))
                .expect("terminal");
        terminal
            .draw(|frame| crate::ui::draw(frame, engine, view, Instant::now()))
            .expect("draw");
    }

    #[test]
    fn w_in_the_chat_jumps_to_the_reply_pipeline_and_w_comes_back() {
        let (mut view, mut engine) = setup();
        ask(&mut engine, "who guards the waystone?");
        scenario(&mut engine, "an ambush at the bridge");
        let turn = turn(&engine, 0);
        view.focus = Focus::Chat;
        view.lifecycle_selected = 1;
        view.chat_scroll = 2;
        assert!(on_key(key(KeyCode::Char('w')), &mut view, &engine).is_empty());
        assert_eq!(view.focus, Focus::Lifecycle);
        assert_eq!(view.key_context(), Context::Detail);
        let open = view.waterfall.expect("the waterfall is open");
        assert_eq!(open.root, turn);
        assert_eq!(open.selected, 0, "the root's bar");
        // The scenario's three rows come first; then the turn.
        assert_eq!(view.lifecycle_selected, 3);
        assert_eq!(
            view.lifecycle.row(&engine, 3, Instant::now()).map(|r| r.id),
            Some(turn)
        );
        // Up and down move between the turn, its retrieval and its chat.
        for _ in 0..5 {
            on_key(key(KeyCode::Down), &mut view, &engine);
        }
        assert_eq!(view.waterfall.map(|w| w.selected), Some(2));
        on_key(key(KeyCode::Char('k')), &mut view, &engine);
        assert_eq!(view.waterfall.map(|w| w.selected), Some(1));
        // w goes back to the chat as it was.
        assert!(on_key(key(KeyCode::Char('w')), &mut view, &engine).is_empty());
        assert!(view.waterfall.is_none());
        assert_eq!(view.focus, Focus::Chat);
        assert_eq!(view.lifecycle_selected, 1);
        assert_eq!(view.chat_scroll, 2);
    }

    #[test]
    fn w_on_the_shown_scenario_jumps_and_backspace_comes_back_while_esc_stays() {
        let (mut view, mut engine) = setup();
        scenario(&mut engine, "a burning mill");
        ask(&mut engine, "who keeps the ford?");
        let root = engine.scenarios()[0].request;
        view.focus = Focus::Scenarios;
        on_key(key(KeyCode::Char('w')), &mut view, &engine);
        assert_eq!(view.waterfall.map(|w| w.root), Some(root));
        assert_eq!(view.lifecycle_selected, 3, "below the newer turn's rows");
        on_key(key(KeyCode::Backspace), &mut view, &engine);
        assert_eq!(view.focus, Focus::Scenarios);
        assert!(view.waterfall.is_none());
        assert_eq!(view.lifecycle_selected, 0);
        // Esc closes to the table instead, the pipeline's root selected.
        on_key(key(KeyCode::Char('w')), &mut view, &engine);
        on_key(key(KeyCode::Esc), &mut view, &engine);
        assert!(view.waterfall.is_none());
        assert_eq!(view.focus, Focus::Lifecycle);
        assert_eq!(view.lifecycle_selected, 3);
        // From the table, w does nothing more than close.
        on_key(key(KeyCode::Enter), &mut view, &engine);
        assert_eq!(view.waterfall.map(|w| w.root), Some(root));
        on_key(key(KeyCode::Char('w')), &mut view, &engine);
        assert!(view.waterfall.is_none());
        assert_eq!(view.focus, Focus::Lifecycle);
    }

    #[test]
    fn the_chat_jumps_to_the_lowest_reply_on_screen() {
        let (mut view, mut engine) = setup();
        ask(&mut engine, "who guards the waystone?");
        ask(&mut engine, "where is the ford?");
        view.focus = Focus::Chat;
        // Never drawn: the newest reply.
        on_key(key(KeyCode::Char('w')), &mut view, &engine);
        assert_eq!(view.waterfall.map(|w| w.root), Some(turn(&engine, 1)));
        on_key(key(KeyCode::Char('w')), &mut view, &engine);
        // Scrolled to the top of a short chat pane: the first reply is the
        // lowest one on screen.
        draw(&view, &engine, 80, 20);
        view.chat_scroll = view.chat_max_scroll.get();
        draw(&view, &engine, 80, 20);
        on_key(key(KeyCode::Char('w')), &mut view, &engine);
        assert_eq!(view.waterfall.map(|w| w.root), Some(turn(&engine, 0)));
        on_key(key(KeyCode::Char('w')), &mut view, &engine);
        // A selected message wins: the second question leads to its reply.
        view.chat_selected = Some(2);
        on_key(key(KeyCode::Char('w')), &mut view, &engine);
        assert_eq!(view.waterfall.map(|w| w.root), Some(turn(&engine, 1)));
    }

    #[test]
    fn enter_on_a_child_row_opens_its_pipeline_with_that_bar_selected() {
        let (mut view, mut engine) = setup();
        ask(&mut engine, "who guards the waystone?");
        view.focus = Focus::Lifecycle;
        view.lifecycle_selected = 2;
        let chat = view
            .lifecycle
            .row(&engine, 2, Instant::now())
            .map(|r| r.id)
            .expect("the chat row");
        on_key(key(KeyCode::Enter), &mut view, &engine);
        let open = view.waterfall.expect("open");
        assert_eq!(open.root, turn(&engine, 0));
        assert_eq!(open.selected, 2);
        assert_eq!(
            crate::ui::waterfall::bar_index(&engine, open.root, chat),
            Some(2)
        );
        assert_eq!(open.back, None);
    }

    #[test]
    fn w_with_nothing_to_trace_says_so() {
        let (mut view, engine) = setup();
        for focus in [Focus::Chat, Focus::Scenarios] {
            view.focus = focus;
            let actions = on_key(key(KeyCode::Char('w')), &mut view, &engine);
            assert!(
                matches!(&actions[..], [Action::Notice(m, true)] if m.contains("to trace")),
                "{actions:?}"
            );
            assert!(view.waterfall.is_none());
            assert_eq!(view.focus, focus);
        }
    }
}
