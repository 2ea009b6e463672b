//! The keymap: a key press and the current view -> changes to the view and
//! actions for the loop to carry out. No IO; the engine is only read, so
//! every binding is testable without a terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::engine::breaker::Force;
use crate::engine::command::{Line, parse_line};
use crate::engine::{Command, Engine};
use crate::ui::{Citation, CitedIn, Focus, ViewState, lifecycle_rows};

/// What the loop must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Engine(Command),
    /// A message for the status line.
    Notice(String, bool),
    /// Switch the knowledge base the local retriever searches.
    KbUse(String),
    Quit,
}

const PAGE: usize = 10;
const CONVERSATION: usize = 0;

pub fn on_key(key: KeyEvent, view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
        return ctrl_c(view, engine);
    }
    view.quit_armed = false;
    if view.help {
        let max = view.help_max_scroll.get();
        match key.code {
            KeyCode::Esc
            | KeyCode::Char('q')
            | KeyCode::Char('?')
            | KeyCode::F(1)
            | KeyCode::Enter => {
                view.help = false;
                view.help_scroll = 0;
            }
            KeyCode::Down | KeyCode::Char('j') => {
                view.help_scroll = (view.help_scroll + 1).min(max)
            }
            KeyCode::Up | KeyCode::Char('k') => {
                view.help_scroll = view.help_scroll.saturating_sub(1)
            }
            KeyCode::PageDown => view.help_scroll = (view.help_scroll + PAGE).min(max),
            KeyCode::PageUp => view.help_scroll = view.help_scroll.saturating_sub(PAGE),
            _ => {}
        }
        return Vec::new();
    }
    if view.detail {
        if matches!(key.code, KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter) {
            view.detail = false;
        }
        return Vec::new();
    }
    if let Some(open) = view.citation {
        match key.code {
            KeyCode::Char(c @ '1'..='9') => {
                view.citation = Some(Citation {
                    number: c as usize - '0' as usize,
                    ..open
                });
            }
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter => view.citation = None,
            _ => {}
        }
        return Vec::new();
    }
    match key.code {
        KeyCode::F(1) => {
            view.help = true;
            return Vec::new();
        }
        KeyCode::Tab => {
            view.focus = view.focus.next();
            return Vec::new();
        }
        KeyCode::BackTab => {
            view.focus = view.focus.prev();
            return Vec::new();
        }
        _ => {}
    }
    match view.focus {
        Focus::Input => input_key(key, view, engine),
        focus => pane_key(key, focus, view, engine),
    }
}

fn ctrl_c(view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    if engine.conversations()[CONVERSATION].running.is_some() {
        view.quit_armed = false;
        return vec![Action::Engine(Command::CancelRunning {
            conversation: CONVERSATION,
        })];
    }
    if view.quit_armed {
        return vec![Action::Quit];
    }
    view.quit_armed = true;
    Vec::new()
}

fn input_key(key: KeyEvent, view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let enter =
        key.code == KeyCode::Enter || (ctrl && matches!(key.code, KeyCode::Char('m' | 'j')));
    if enter {
        return submit(view, engine);
    }
    if key.code == KeyCode::Esc {
        view.focus = Focus::Chat;
        return Vec::new();
    }
    view.input.input(key);
    Vec::new()
}

fn submit(view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    let text = view.input.lines().join(" ");
    let parsed = match parse_line(&text) {
        Ok(Some(line)) => line,
        Ok(None) => return Vec::new(),
        // Keep the text so it can be fixed.
        Err(message) => return vec![Action::Notice(message, true)],
    };
    view.reset_input();
    let action = match parsed {
        Line::Ask(text) => {
            view.chat_scroll = 0;
            Action::Engine(Command::Ask {
                conversation: CONVERSATION,
                text,
            })
        }
        Line::Scenario { prompt, seed } => {
            view.scenario_selected = None;
            view.scenario_scroll = 0;
            Action::Engine(Command::Scenario { prompt, seed })
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
            conversation: CONVERSATION,
        }),
        Line::ClearQueue => Action::Engine(Command::ClearQueue {
            conversation: CONVERSATION,
        }),
        Line::Rag(on) => Action::Engine(Command::SetRag(on)),
        Line::KbAdd(paths) => Action::Engine(Command::KbAdd { paths }),
        Line::KbUse(name) => Action::KbUse(name),
        Line::CancelQueued(number) => Action::Engine(Command::CancelQueued {
            conversation: CONVERSATION,
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

fn pane_key(key: KeyEvent, focus: Focus, view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    if let KeyCode::Char(c @ '1'..='9') = key.code {
        let source = match focus {
            // The newest reply that has passages to cite.
            Focus::Chat => engine.conversations()[CONVERSATION]
                .messages
                .iter()
                .rposition(|m| !m.passages.is_empty())
                .map(CitedIn::Message),
            Focus::Scenarios => view.current_scenario(engine).map(CitedIn::Scenario),
            _ => None,
        };
        match source {
            Some(source) => {
                view.citation = Some(Citation {
                    source,
                    number: c as usize - '0' as usize,
                });
                return Vec::new();
            }
            None if focus != Focus::Lifecycle => {
                return vec![Action::Notice("nothing here cites any lore".into(), true)];
            }
            None => {}
        }
    }
    match key.code {
        KeyCode::Char('q') => return vec![Action::Quit],
        KeyCode::Char('?') => {
            view.help = true;
            return Vec::new();
        }
        KeyCode::Char('i') | KeyCode::Esc => {
            view.focus = Focus::Input;
            return Vec::new();
        }
        KeyCode::Char('/') => {
            view.focus = Focus::Input;
            view.input.insert_char('/');
            return Vec::new();
        }
        _ => {}
    }
    match focus {
        Focus::Chat => {
            let max = view.chat_max_scroll.get();
            // Scrolling is counted up from the newest line.
            view.chat_scroll = match key.code {
                KeyCode::Up | KeyCode::Char('k') => view.chat_scroll + 1,
                KeyCode::Down | KeyCode::Char('j') => view.chat_scroll.saturating_sub(1),
                KeyCode::PageUp => view.chat_scroll + PAGE,
                KeyCode::PageDown => view.chat_scroll.saturating_sub(PAGE),
                KeyCode::Home | KeyCode::Char('g') => max,
                KeyCode::End | KeyCode::Char('G') => 0,
                _ => view.chat_scroll,
            }
            .min(max);
            Vec::new()
        }
        Focus::Scenarios => scenario_key(key, view, engine),
        Focus::Lifecycle => lifecycle_key(key, view, engine),
        Focus::Input => Vec::new(),
    }
}

fn scenario_key(key: KeyEvent, view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    let Some(current) = view.current_scenario(engine) else {
        return Vec::new();
    };
    let last = engine.scenarios().len() - 1;
    let max = view.scenario_max_scroll.get();
    match key.code {
        KeyCode::Left | KeyCode::Char('h') => {
            view.scenario_selected = Some(current.saturating_sub(1));
            view.scenario_scroll = 0;
        }
        KeyCode::Right | KeyCode::Char('l') => {
            view.scenario_selected = Some((current + 1).min(last));
            view.scenario_scroll = 0;
        }
        KeyCode::Up | KeyCode::Char('k') => {
            view.scenario_scroll = view.scenario_scroll.saturating_sub(1)
        }
        KeyCode::Down | KeyCode::Char('j') => {
            view.scenario_scroll = (view.scenario_scroll + 1).min(max)
        }
        KeyCode::PageUp => view.scenario_scroll = view.scenario_scroll.saturating_sub(PAGE),
        KeyCode::PageDown => view.scenario_scroll = (view.scenario_scroll + PAGE).min(max),
        KeyCode::Home | KeyCode::Char('g') => view.scenario_scroll = 0,
        KeyCode::End | KeyCode::Char('G') => view.scenario_scroll = max,
        KeyCode::Char('r') => {
            view.scenario_selected = None;
            view.scenario_scroll = 0;
            return vec![Action::Engine(Command::Regenerate { scenario: current })];
        }
        KeyCode::Char('e') => return vec![Action::Engine(Command::Export { scenario: current })],
        _ => {}
    }
    Vec::new()
}

fn lifecycle_key(key: KeyEvent, view: &mut ViewState, engine: &Engine) -> Vec<Action> {
    let rows = lifecycle_rows(engine);
    let last = rows.len().saturating_sub(1);
    let sel = view.lifecycle_selected.min(last);
    view.lifecycle_selected = match key.code {
        KeyCode::Up | KeyCode::Char('k') => sel.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => (sel + 1).min(last),
        KeyCode::PageUp => sel.saturating_sub(PAGE),
        KeyCode::PageDown => (sel + PAGE).min(last),
        KeyCode::Home | KeyCode::Char('g') => 0,
        KeyCode::End | KeyCode::Char('G') => last,
        _ => sel,
    };
    match key.code {
        KeyCode::Enter if !rows.is_empty() => view.detail = true,
        KeyCode::Char('b') => {
            let Some(row) = rows.get(view.lifecycle_selected) else {
                return Vec::new();
            };
            let Some(backend) = engine.backends().get(&row.backend) else {
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
                backend: row.backend.clone(),
                force,
            })];
        }
        KeyCode::Char('c') => {
            return match rows.get(view.lifecycle_selected) {
                Some(r) if !r.phase.is_final() => vec![Action::Engine(Command::Cancel {
                    id: r.id.to_string(),
                })],
                Some(_) => vec![Action::Notice(
                    "that request has already ended".into(),
                    true,
                )],
                None => Vec::new(),
            };
        }
        _ => {}
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use std::time::{Instant, SystemTime};

    use super::*;
    use crate::engine::EngineConfig;
    use crate::ui::Theme;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn setup() -> (ViewState, Engine) {
        let engine = Engine::new(
            EngineConfig::default(),
            Instant::now(),
            SystemTime::UNIX_EPOCH,
            1,
        );
        (ViewState::new(Theme::plain()), engine)
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
                conversation: 0,
                text: "who guards the waystone?".into()
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
}
