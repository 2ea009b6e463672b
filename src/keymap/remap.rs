//! Remapping from the `[keys]` config section: the names of actions and
//! contexts as written in the file, key names parsed from text (`Ctrl-Q`,
//! `Alt-Enter`, `PgDn`, `q`), rebinding an action's keys, and the
//! conflicts a remap can create.
//!
//! Invariants: an action's name is its `Action::id` (snake_case) and parses
//! back to it; a key's `Display` parses back to the same key; `rebind`
//! changes only the keys of bindings of that action, never their context,
//! description or order, so the help overlay and the hints follow it.

use std::borrow::Cow;
use std::fmt;

use crossterm::event::{KeyCode, KeyModifiers};

use super::{Action, Binding, Context, Key, Keymap, PRESSED};

/// Every action that can be named in `[keys]`, with its name.
pub const ACTION_NAMES: &[(&str, Action)] = &[
    ("interrupt", Action::Interrupt),
    ("focus_next", Action::FocusNext),
    ("focus_prev", Action::FocusPrev),
    ("help", Action::Help),
    ("close", Action::Close),
    ("submit", Action::Submit),
    ("focus_chat", Action::FocusChat),
    ("focus_input", Action::FocusInput),
    ("start_command", Action::StartCommand),
    ("quit", Action::Quit),
    ("scroll_up", Action::ScrollUp),
    ("scroll_down", Action::ScrollDown),
    ("page_up", Action::PageUp),
    ("page_down", Action::PageDown),
    ("top", Action::Top),
    ("bottom", Action::Bottom),
    ("open_citation", Action::OpenCitation(PRESSED)),
    ("prev_scenario", Action::PrevScenario),
    ("next_scenario", Action::NextScenario),
    ("regenerate", Action::Regenerate),
    ("export", Action::Export),
    ("open_detail", Action::OpenDetail),
    ("open_pipeline", Action::OpenPipeline),
    ("return_from_pipeline", Action::ReturnFromPipeline),
    ("cancel_request", Action::CancelRequest),
    ("toggle_breaker", Action::ToggleBreaker),
    ("filter", Action::Filter),
    ("cycle_sort", Action::CycleSort),
    ("invert_sort", Action::InvertSort),
    ("pause", Action::Pause),
    ("open_passage", Action::OpenPassage),
    ("sessions", Action::Sessions),
    ("resend", Action::Resend),
    ("zoom", Action::Zoom),
    ("newline", Action::Newline),
    ("history_prev", Action::HistoryPrev),
    ("history_next", Action::HistoryNext),
    ("select_prev", Action::SelectPrev),
    ("select_next", Action::SelectNext),
    ("copy", Action::Copy),
];

impl Action {
    /// The action's name in `[keys]` and in docs/keys.md.
    pub fn id(self) -> &'static str {
        ACTION_NAMES
            .iter()
            .find(|(_, a)| a.same_kind(self))
            .map_or("?", |(name, _)| name)
    }

    pub fn from_id(name: &str) -> Option<Action> {
        ACTION_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }
}

impl Context {
    pub fn from_id(name: &str) -> Option<Context> {
        Context::ALL.into_iter().find(|c| c.id() == name)
    }
}

/// Named keys as `[keys]` accepts them (case-insensitive), besides single
/// characters and `F1`-`F12`.
const NAMED: &[(&str, KeyCode)] = &[
    ("enter", KeyCode::Enter),
    ("return", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("escape", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("space", KeyCode::Char(' ')),
    ("up", KeyCode::Up),
    ("↑", KeyCode::Up),
    ("down", KeyCode::Down),
    ("↓", KeyCode::Down),
    ("left", KeyCode::Left),
    ("←", KeyCode::Left),
    ("right", KeyCode::Right),
    ("→", KeyCode::Right),
    ("pgup", KeyCode::PageUp),
    ("pageup", KeyCode::PageUp),
    ("pgdn", KeyCode::PageDown),
    ("pagedown", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
    ("del", KeyCode::Delete),
    ("insert", KeyCode::Insert),
];

impl std::str::FromStr for Key {
    type Err = String;

    /// `q`, `G`, `?`, `Ctrl-Q`, `Alt-Enter`, `Shift-Tab`, `F2`, `PgDn`, `↑`,
    /// `1-9` (the digit keys, for `open_citation`).
    fn from_str(text: &str) -> Result<Key, String> {
        let text = text.trim();
        if text == "1-9" {
            return Ok(Key::Digit);
        }
        let mut mods = KeyModifiers::NONE;
        let mut rest = text;
        // A modifier is a prefix ending in `-` with something after it
        // (`-` alone is the minus key).
        while let Some((head, tail)) = rest.split_once('-') {
            if tail.is_empty() {
                break;
            }
            let flag = match head.to_ascii_lowercase().as_str() {
                "ctrl" | "c" | "control" => KeyModifiers::CONTROL,
                "alt" | "a" | "m" | "meta" | "option" => KeyModifiers::ALT,
                "shift" | "s" => KeyModifiers::SHIFT,
                "super" | "cmd" => KeyModifiers::SUPER,
                _ => {
                    return Err(format!(
                        "unknown modifier `{head}` in `{text}`; use Ctrl-, Alt-, Shift- or Super-"
                    ));
                }
            };
            mods |= flag;
            rest = tail;
        }
        let mut chars = rest.chars();
        let named = NAMED.iter().find(|(n, _)| *n == rest.to_ascii_lowercase());
        let code = match (chars.next(), chars.next()) {
            _ if named.is_some() => named.map_or(KeyCode::Null, |(_, code)| *code),
            (Some(c), None) => KeyCode::Char(c),
            _ => {
                let lower = rest.to_ascii_lowercase();
                if let Some(n) = lower.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
                    if !(1..=12).contains(&n) {
                        return Err(format!("`{text}`: function keys are F1 to F12"));
                    }
                    KeyCode::F(n)
                } else if let Some((_, code)) = NAMED.iter().find(|(n, _)| *n == lower) {
                    *code
                } else {
                    return Err(format!(
                        "unknown key `{rest}` in `{text}`; use a character (q, G, ?), F1-F12, or one of Enter Esc Tab Space Up Down Left Right PgUp PgDn Home End Backspace Delete Insert"
                    ));
                }
            }
        };
        // Shift with a character is the character itself (Shift-g is G);
        // Shift-Tab is BackTab.
        let code = match code {
            KeyCode::Char(c)
                if mods.contains(KeyModifiers::SHIFT) && !mods.contains(KeyModifiers::CONTROL) =>
            {
                mods -= KeyModifiers::SHIFT;
                KeyCode::Char(c.to_ascii_uppercase())
            }
            KeyCode::Tab if mods.contains(KeyModifiers::SHIFT) => {
                mods -= KeyModifiers::SHIFT;
                KeyCode::BackTab
            }
            // With Ctrl a letter is one key in either case (shown upper).
            KeyCode::Char(c) if mods.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            other => other,
        };
        Ok(Key::Chord(code, mods))
    }
}

/// Why a remap was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemapError {
    #[error("`{0}` has no key in {1} (it works in: {2})")]
    NotInContext(&'static str, &'static str, String),
    #[error("give at least one key")]
    NoKeys,
}

/// Two bindings live together that one key presses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub key: Key,
    /// Where the key goes when both are live.
    pub context: Context,
    pub first: (Context, Action),
    pub second: (Context, Action),
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is bound to both {} ({}) and {} ({})",
            self.key,
            self.first.1.id(),
            self.first.0.id(),
            self.second.1.id(),
            self.second.0.id()
        )
    }
}

impl Keymap {
    /// Give `action` these keys: in `context` only, or (`None`) wherever it
    /// has keys. Its other bindings, descriptions and order stay.
    pub fn rebind(
        &mut self,
        context: Option<Context>,
        action: Action,
        keys: Vec<Key>,
    ) -> Result<(), RemapError> {
        if keys.is_empty() {
            return Err(RemapError::NoKeys);
        }
        let mut found = false;
        for b in &mut self.bindings {
            if b.action.same_kind(action) && context.is_none_or(|c| c == b.context) {
                b.keys = Cow::Owned(keys.clone());
                found = true;
            }
        }
        if found {
            return Ok(());
        }
        let mut places: Vec<&str> = self
            .bindings
            .iter()
            .filter(|b| b.action.same_kind(action))
            .map(|b| b.context.id())
            .collect();
        places.dedup();
        Err(RemapError::NotInContext(
            action.id(),
            context.map_or("any context", Context::id),
            places.join(", "),
        ))
    }

    /// Every key bound twice where contexts meet (each pair once).
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut out: Vec<Conflict> = Vec::new();
        for context in Context::ALL {
            let live: Vec<&Binding> = context
                .chain()
                .iter()
                .flat_map(|c| self.in_context(*c))
                .collect();
            for (i, a) in live.iter().enumerate() {
                for b in &live[i + 1..] {
                    for ka in a.keys.iter() {
                        if !b.keys.iter().any(|kb| ka.overlaps(*kb)) {
                            continue;
                        }
                        let conflict = Conflict {
                            key: *ka,
                            context,
                            first: (a.context, a.action),
                            second: (b.context, b.action),
                        };
                        if !out.iter().any(|c| {
                            c.first == conflict.first
                                && c.second == conflict.second
                                && c.key == conflict.key
                        }) {
                            out.push(conflict);
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyEvent;

    use super::*;

    #[test]
    fn every_action_has_a_name_that_parses_back_and_a_key() {
        let map = Keymap::default();
        for (name, action) in ACTION_NAMES {
            assert_eq!(Action::from_id(name), Some(*action));
            assert_eq!(action.id(), *name);
            assert!(
                map.bindings().iter().any(|b| b.action.same_kind(*action)),
                "{name} is reachable by no key"
            );
        }
        for b in map.bindings() {
            assert_ne!(b.action.id(), "?", "{:?} has no name", b.action);
        }
    }

    #[test]
    fn keys_parse_from_what_they_display() {
        for b in Keymap::default().bindings() {
            for key in b.keys.iter() {
                assert_eq!(key.to_string().parse::<Key>(), Ok(*key), "{key}");
            }
        }
        assert_eq!("ctrl-q".parse::<Key>(), Ok(Key::ctrl('q')));
        assert_eq!("Shift-g".parse::<Key>(), Ok(Key::char('G')));
        assert_eq!("Shift-Tab".parse::<Key>(), Ok(Key::plain(KeyCode::BackTab)));
        assert_eq!("-".parse::<Key>(), Ok(Key::char('-')));
        assert_eq!(
            "Alt-Enter".parse::<Key>(),
            Ok(Key::Chord(KeyCode::Enter, KeyModifiers::ALT))
        );
        assert!("Hyper-x".parse::<Key>().is_err());
        assert!("F13".parse::<Key>().is_err());
        assert!("Pgdown2".parse::<Key>().is_err());
    }

    #[test]
    fn a_rebound_action_answers_its_new_key_only() {
        let mut map = Keymap::default();
        map.rebind(None, Action::Quit, vec![Key::ctrl('q')])
            .expect("rebind");
        let q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        let ctrl_q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL);
        assert_eq!(map.action_for(Context::Chat, q), None);
        assert_eq!(map.action_for(Context::Chat, ctrl_q), Some(Action::Quit));
        assert_eq!(
            map.hints(Context::Chat).last().map(String::as_str),
            Some("Ctrl-Q quit")
        );
        // In one context only.
        map.rebind(
            Some(Context::Chat),
            Action::ScrollDown,
            vec![Key::char('n')],
        )
        .expect("rebind");
        let n = KeyEvent::new(KeyCode::Char('n'), KeyModifiers::NONE);
        let j = KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE);
        assert_eq!(map.action_for(Context::Chat, n), Some(Action::ScrollDown));
        assert_eq!(map.action_for(Context::Chat, j), None);
        assert_eq!(
            map.action_for(Context::Lifecycle, j),
            Some(Action::ScrollDown)
        );
        assert!(map.conflicts().is_empty());
        assert!(matches!(
            map.rebind(Some(Context::Chat), Action::Filter, vec![Key::char('f')]),
            Err(RemapError::NotInContext("filter", "chat", _))
        ));
    }

    #[test]
    fn conflicts_name_both_actions() {
        let mut map = Keymap::default();
        assert_eq!(map.conflicts(), Vec::new());
        map.rebind(None, Action::Zoom, vec![Key::char('q')])
            .expect("rebind");
        let found = map.conflicts();
        assert!(!found.is_empty());
        assert!(
            found
                .iter()
                .any(|c| c.to_string() == "q is bound to both quit (panes) and zoom (panes)"),
            "{found:?}"
        );
    }
}
