//! Key bindings as data. One table (`table.rs`) says, for every key, where it
//! works (`Context`), what it does (`Action`) and how to describe it; the key
//! handler (`tui::keys`), the help overlay and the status-bar hints (`ui`)
//! and `docs/keys.md` (`docs.rs`) are all derived from it, so they cannot
//! disagree. Adding a key is one table line plus, for a new `Action`, one
//! dispatch arm in `tui::keys`.
//!
//! Invariants:
//! - This module is neutral: it imports crossterm's key types and nothing
//!   from the rest of the crate, so both `ui` and `tui` may read it.
//! - Within the contexts that are live together (`Context::chain`), no key
//!   is bound twice (a test checks the default table).
//! - Lookup is a search over a table value (`Keymap`), never a match on key
//!   codes: the `[keys]` config section rebinds an action by editing that
//!   value (`remap.rs`), and the TUI's table is built from the config.

pub mod docs;
mod remap;
mod table;

use std::borrow::Cow;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

pub use remap::{ACTION_NAMES, Conflict, RemapError};
pub use table::{COMMANDS, HINTS};

/// Where a binding applies. The screen is in exactly one context at a time
/// (`ViewState::key_context` in `ui`); each context also sees the bindings
/// of the broader contexts in its `chain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Everywhere, even with an overlay open.
    Global,
    /// Everywhere on the main screen, whatever has the focus, but not in an
    /// overlay.
    Main,
    /// The focused input line.
    Input,
    /// Any focused pane (chat, scenarios, lifecycle).
    Panes,
    Chat,
    Scenarios,
    Lifecycle,
    /// The help overlay.
    Help,
    /// The cited-passage overlay.
    Citation,
    /// The waterfall overlay: a request's pipeline as bars on a time axis.
    Detail,
    /// The `/kb search` overlay: its results, or a passage opened from them.
    Search,
}

impl Context {
    /// Every context, in the order the help overlay and the docs show them.
    pub const ALL: [Context; 11] = [
        Context::Global,
        Context::Main,
        Context::Input,
        Context::Panes,
        Context::Chat,
        Context::Scenarios,
        Context::Lifecycle,
        Context::Help,
        Context::Citation,
        Context::Detail,
        Context::Search,
    ];

    /// The contexts whose bindings are live when keys go to `self`, searched
    /// in this order (a broader context first only where it must win:
    /// Ctrl-C everywhere, Tab and F1 over every pane).
    pub fn chain(self) -> &'static [Context] {
        use Context::*;
        match self {
            Global => &[Global],
            Main => &[Global, Main],
            Input => &[Global, Main, Input],
            Panes => &[Global, Main, Panes],
            Chat => &[Global, Main, Chat, Panes],
            Scenarios => &[Global, Main, Scenarios, Panes],
            Lifecycle => &[Global, Main, Lifecycle, Panes],
            Help => &[Global, Help],
            Citation => &[Global, Citation],
            Detail => &[Global, Detail],
            Search => &[Global, Search],
        }
    }

    /// The heading in the help overlay and the docs.
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Anywhere",
            Context::Main => "Main screen (no overlay open)",
            Context::Input => "Input",
            Context::Panes => "Any pane",
            Context::Chat => "Chat",
            Context::Scenarios => "Scenarios",
            Context::Lifecycle => "Request lifecycle",
            Context::Help => "Help overlay",
            Context::Citation => "Cited passage overlay",
            Context::Detail => "Waterfall overlay (a request's pipeline)",
            Context::Search => "Search results overlay (/kb search)",
        }
    }

    /// A stable name, for the docs' section markers (and later, config).
    pub fn id(self) -> &'static str {
        match self {
            Context::Global => "global",
            Context::Main => "main",
            Context::Input => "input",
            Context::Panes => "panes",
            Context::Chat => "chat",
            Context::Scenarios => "scenarios",
            Context::Lifecycle => "lifecycle",
            Context::Help => "help",
            Context::Citation => "citation",
            Context::Detail => "detail",
            Context::Search => "search",
        }
    }
}

/// Everything a key can do. What an action means can depend on the context
/// (`ScrollDown` moves the selection in the lifecycle pane); the handler in
/// `tui::keys` dispatches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Cancel the running reply; with nothing running, arm quitting, and
    /// quit if already armed.
    Interrupt,
    FocusNext,
    FocusPrev,
    /// Open the help overlay.
    Help,
    /// Close the open overlay.
    Close,
    /// Send the input line.
    Submit,
    FocusChat,
    FocusInput,
    /// Focus the input and type `/`.
    StartCommand,
    Quit,
    ScrollUp,
    ScrollDown,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Open the passage cited as `[n]`. In the table, `OpenCitation(PRESSED)`
    /// bound to `Key::Digit` means "the digit pressed".
    OpenCitation(u8),
    PrevScenario,
    NextScenario,
    Regenerate,
    Export,
    /// The waterfall of the selected request's pipeline.
    OpenDetail,
    /// Jump to the waterfall of the pipeline behind the reply or scenario
    /// on screen (focus moves to the lifecycle pane).
    OpenPipeline,
    /// Back from the waterfall to where the jump came from (or the table).
    ReturnFromPipeline,
    /// Cancel the selected request.
    CancelRequest,
    /// Cycle the selected backend's breaker: auto, open, closed.
    ToggleBreaker,
    /// Open the lifecycle table's filter prompt.
    Filter,
    /// Sort the lifecycle table by the next column.
    CycleSort,
    /// Invert the lifecycle table's sort.
    InvertSort,
    /// Pause or resume following new requests in the lifecycle table.
    Pause,
    /// Open the selected search result.
    OpenPassage,
    /// Open the session picker.
    Sessions,
    /// Send the conversation's unsent messages again.
    Resend,
    /// Zoom the focused pane to the whole screen, or back.
    Zoom,
    /// Insert a newline in the input.
    Newline,
    /// In the input: a line up, or on the first line the previous input.
    HistoryPrev,
    /// In the input: a line down, or on the last line the next input.
    HistoryNext,
    /// Select the chat message above.
    SelectPrev,
    /// Select the chat message below.
    SelectNext,
    /// Copy what is selected or shown (to the clipboard, or via OSC 52).
    Copy,
}

/// The placeholder number in `Action::OpenCitation(PRESSED)`: filled in
/// with the digit that was pressed.
pub const PRESSED: u8 = 0;

impl Action {
    /// The same kind of action, ignoring its number.
    pub fn same_kind(self, other: Action) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }

    fn with_digit(self, digit: Option<u8>) -> Action {
        match (self, digit) {
            (Action::OpenCitation(PRESSED), Some(d)) => Action::OpenCitation(d),
            _ => self,
        }
    }
}

/// Modifiers that must match. Shift is left out: it is already part of the
/// character (`G`, `?`) or of the key (`BackTab`), and terminals disagree on
/// whether they report it.
const MATCHED: KeyModifiers = KeyModifiers::CONTROL
    .union(KeyModifiers::ALT)
    .union(KeyModifiers::SUPER)
    .union(KeyModifiers::HYPER)
    .union(KeyModifiers::META);

/// One key as a binding names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A key with its modifiers (Ctrl, Alt; Shift is ignored, see above).
    Chord(KeyCode, KeyModifiers),
    /// Any of `1`-`9`; an action that takes a number gets the digit.
    Digit,
}

impl Key {
    pub const fn plain(code: KeyCode) -> Key {
        Key::Chord(code, KeyModifiers::NONE)
    }

    pub const fn char(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }

    pub const fn ctrl(c: char) -> Key {
        Key::Chord(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn modifiers(self) -> KeyModifiers {
        match self {
            Key::Chord(_, mods) => mods & MATCHED,
            Key::Digit => KeyModifiers::NONE,
        }
    }

    /// Whether `event` presses this key. `exact`: the modifiers must be the
    /// same; otherwise the event may hold more (Alt-j still scrolls, as
    /// Ctrl-Alt-C still interrupts).
    fn matches(self, event: &KeyEvent, exact: bool) -> bool {
        let held = event.modifiers & MATCHED;
        let mods = self.modifiers();
        let mods_ok = if exact {
            held == mods
        } else {
            held.contains(mods)
        };
        if !mods_ok {
            return false;
        }
        match (self, event.code) {
            (Key::Digit, KeyCode::Char(c)) => ('1'..='9').contains(&c),
            // With Ctrl a letter is the same key in either case (Ctrl-C
            // arrives as `c` or `C` depending on the terminal and Shift).
            (Key::Chord(KeyCode::Char(a), m), KeyCode::Char(b))
                if m.contains(KeyModifiers::CONTROL) =>
            {
                a.eq_ignore_ascii_case(&b)
            }
            (Key::Chord(code, _), pressed) => code == pressed,
            (Key::Digit, _) => false,
        }
    }

    /// Whether a character key (shown `q` in backticks in the docs) rather
    /// than a named one (Enter, F1, ↑).
    pub fn is_char(self) -> bool {
        matches!(self, Key::Digit)
            || matches!(self, Key::Chord(KeyCode::Char(c), m) if c != ' ' && (m & MATCHED).is_empty())
    }

    /// Whether two keys can be pressed by one event.
    pub fn overlaps(self, other: Key) -> bool {
        match (self, other) {
            (Key::Digit, Key::Digit) => true,
            (Key::Digit, Key::Chord(KeyCode::Char(c), m))
            | (Key::Chord(KeyCode::Char(c), m), Key::Digit) => {
                ('1'..='9').contains(&c) && (m & MATCHED).is_empty()
            }
            (Key::Chord(a, ma), Key::Chord(b, mb)) => {
                let same_code = match (a, b) {
                    (KeyCode::Char(x), KeyCode::Char(y)) if ma.contains(KeyModifiers::CONTROL) => {
                        x.eq_ignore_ascii_case(&y)
                    }
                    _ => a == b,
                };
                same_code && (ma & MATCHED) == (mb & MATCHED)
            }
            _ => false,
        }
    }
}

/// `Tab`, `Shift-Tab`, `Ctrl-C`, `?`, `F1`, `↑`, `PgUp`, `1-9`.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, mods) = match *self {
            Key::Digit => return f.write_str("1-9"),
            Key::Chord(code, mods) => (code, mods),
        };
        for (flag, name) in [
            (KeyModifiers::CONTROL, "Ctrl-"),
            (KeyModifiers::ALT, "Alt-"),
            (KeyModifiers::SUPER, "Super-"),
            (KeyModifiers::HYPER, "Hyper-"),
            (KeyModifiers::META, "Meta-"),
        ] {
            if mods.contains(flag) {
                f.write_str(name)?;
            }
        }
        let ctrl = mods.contains(KeyModifiers::CONTROL);
        match code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) if ctrl => write!(f, "{}", c.to_ascii_uppercase()),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "F{n}"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::BackTab => f.write_str("Shift-Tab"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::Backspace => f.write_str("Backspace"),
            KeyCode::Delete => f.write_str("Delete"),
            KeyCode::Insert => f.write_str("Insert"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// One line of the table: these keys, in this context, do this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub context: Context,
    /// Shown in this order; the first is the one a hint names.
    pub keys: Cow<'static, [Key]>,
    pub action: Action,
    /// One line, for the help overlay and the docs.
    pub description: &'static str,
}

impl Binding {
    pub const fn new(
        context: Context,
        keys: &'static [Key],
        action: Action,
        description: &'static str,
    ) -> Self {
        Self {
            context,
            keys: Cow::Borrowed(keys),
            action,
            description,
        }
    }

    /// The keys as the help overlay shows them: `↑ k`, `Esc q ? F1 Enter`.
    pub fn keys_label(&self) -> String {
        let mut labels: Vec<String> = Vec::with_capacity(self.keys.len());
        for key in self.keys.iter() {
            let label = key.to_string();
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        labels.join(" ")
    }
}

/// A typed command: its syntax, other names, a line that must parse, and
/// what it does. The parser is `engine::command`; a test checks that every
/// example (and every alias) parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlashCommand {
    pub syntax: &'static str,
    pub aliases: &'static [&'static str],
    pub example: &'static str,
    pub description: &'static str,
}

/// A status-bar hint: shown while keys go to `context`, naming the first key
/// bound to each of `actions` there (`↑↓ scroll`). Kept in order of use:
/// a narrow status bar drops them from the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    pub context: Context,
    pub actions: &'static [Action],
    pub text: &'static str,
}

/// The binding table as a value: the handler looks keys up in it, the views
/// describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

impl Default for Keymap {
    fn default() -> Self {
        Self {
            bindings: table::BINDINGS.to_vec(),
        }
    }
}

impl Keymap {
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The bindings of one context, in table order.
    pub fn in_context(&self, context: Context) -> impl Iterator<Item = &Binding> {
        self.bindings.iter().filter(move |b| b.context == context)
    }

    /// What `key` does when keys go to `context`: the first binding along
    /// the context's chain whose key has exactly the pressed modifiers, or
    /// failing that, one whose modifiers are among those held.
    pub fn action_for(&self, context: Context, key: KeyEvent) -> Option<Action> {
        let digit = match key.code {
            KeyCode::Char(c @ '1'..='9') => c.to_digit(10).and_then(|d| u8::try_from(d).ok()),
            _ => None,
        };
        [true, false].into_iter().find_map(|exact| {
            context.chain().iter().find_map(|ctx| {
                self.in_context(*ctx)
                    .find(|b| b.keys.iter().any(|k| k.matches(&key, exact)))
                    .map(|b| b.action.with_digit(digit))
            })
        })
    }

    /// The first binding along `context`'s chain that does `action` (of the
    /// same kind: any `OpenCitation`).
    pub fn binding_for(&self, context: Context, action: Action) -> Option<&Binding> {
        context
            .chain()
            .iter()
            .find_map(|ctx| self.in_context(*ctx).find(|b| b.action.same_kind(action)))
    }

    /// The status-bar hints while keys go to `context`, most useful first:
    /// `["Enter send", "Tab panes", "F1 help"]`. A hint whose actions have no
    /// key there is left out.
    pub fn hints(&self, context: Context) -> Vec<String> {
        HINTS
            .iter()
            .filter(|h| h.context == context)
            .filter_map(|h| {
                let keys: String = h
                    .actions
                    .iter()
                    .filter_map(|a| self.binding_for(context, *a))
                    .filter_map(|b| b.keys.first())
                    .map(Key::to_string)
                    .collect();
                (!keys.is_empty()).then(|| format!("{keys} {}", h.text))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn keys_display_as_people_write_them() {
        let shown: Vec<String> = [
            Key::plain(KeyCode::Tab),
            Key::plain(KeyCode::BackTab),
            Key::ctrl('c'),
            Key::char('?'),
            Key::plain(KeyCode::F(1)),
            Key::Digit,
            Key::plain(KeyCode::Up),
            Key::plain(KeyCode::PageDown),
            Key::plain(KeyCode::Enter),
            Key::char(' '),
        ]
        .iter()
        .map(Key::to_string)
        .collect();
        assert_eq!(
            shown,
            [
                "Tab",
                "Shift-Tab",
                "Ctrl-C",
                "?",
                "F1",
                "1-9",
                "↑",
                "PgDn",
                "Enter",
                "Space"
            ]
        );
    }

    #[test]
    fn lookup_follows_the_chain_and_prefers_exact_modifiers() {
        let map = Keymap::default();
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        // Ctrl-C wins over the lifecycle's `c`, in either case, even in an overlay.
        for ctx in [Context::Lifecycle, Context::Input, Context::Help] {
            assert_eq!(
                map.action_for(ctx, press(KeyCode::Char('c'), ctrl)),
                Some(Action::Interrupt)
            );
            assert_eq!(
                map.action_for(ctx, press(KeyCode::Char('C'), ctrl | KeyModifiers::SHIFT)),
                Some(Action::Interrupt)
            );
        }
        assert_eq!(
            map.action_for(Context::Lifecycle, press(KeyCode::Char('c'), none)),
            Some(Action::CancelRequest)
        );
        // A broader context's key: q quits from any pane, is text in the input.
        assert_eq!(
            map.action_for(Context::Chat, press(KeyCode::Char('q'), none)),
            Some(Action::Quit)
        );
        assert_eq!(
            map.action_for(Context::Input, press(KeyCode::Char('q'), none)),
            None
        );
        // Shift is part of the character.
        assert_eq!(
            map.action_for(
                Context::Chat,
                press(KeyCode::Char('G'), KeyModifiers::SHIFT)
            ),
            Some(Action::Bottom)
        );
        assert_eq!(
            map.action_for(Context::Input, press(KeyCode::BackTab, KeyModifiers::SHIFT)),
            Some(Action::FocusPrev)
        );
        // Ctrl-J and Alt-Enter break the line, Enter sends; plain j is text.
        assert_eq!(
            map.action_for(Context::Input, press(KeyCode::Char('j'), ctrl)),
            Some(Action::Newline)
        );
        assert_eq!(
            map.action_for(Context::Input, press(KeyCode::Enter, KeyModifiers::ALT)),
            Some(Action::Newline)
        );
        assert_eq!(
            map.action_for(Context::Input, press(KeyCode::Enter, none)),
            Some(Action::Submit)
        );
        assert_eq!(
            map.action_for(Context::Input, press(KeyCode::Char('j'), none)),
            None
        );
        // Tab does nothing in an overlay.
        assert_eq!(
            map.action_for(Context::Help, press(KeyCode::Tab, none)),
            None
        );
    }

    #[test]
    fn a_digit_fills_in_the_citation_number() {
        let map = Keymap::default();
        let seven = press(KeyCode::Char('7'), KeyModifiers::NONE);
        assert_eq!(
            map.action_for(Context::Chat, seven),
            Some(Action::OpenCitation(7))
        );
        assert_eq!(
            map.action_for(Context::Citation, seven),
            Some(Action::OpenCitation(7))
        );
        assert_eq!(map.action_for(Context::Lifecycle, seven), None);
        assert_eq!(
            map.action_for(Context::Chat, press(KeyCode::Char('0'), KeyModifiers::NONE)),
            None
        );
    }

    #[test]
    fn no_key_is_bound_twice_where_contexts_meet() {
        let map = Keymap::default();
        for context in Context::ALL {
            let live: Vec<&Binding> = context
                .chain()
                .iter()
                .flat_map(|c| map.in_context(*c))
                .collect();
            for (i, a) in live.iter().enumerate() {
                for b in &live[i + 1..] {
                    for ka in a.keys.iter() {
                        assert!(
                            !b.keys.iter().any(|kb| ka.overlaps(*kb)),
                            "{ka} is bound to both {:?} ({:?}) and {:?} ({:?}) in {context:?}",
                            a.action,
                            a.context,
                            b.action,
                            b.context
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_context_has_keys_and_every_binding_says_what_it_does() {
        let map = Keymap::default();
        for context in Context::ALL {
            assert!(map.in_context(context).next().is_some(), "{context:?}");
        }
        for b in map.bindings() {
            assert!(!b.keys.is_empty(), "{b:?}");
            assert!(!b.description.is_empty(), "{b:?}");
            assert!(!b.description.contains('\n'), "one line: {b:?}");
        }
    }

    #[test]
    fn hints_match_todays_status_bar() {
        let map = Keymap::default();
        assert_eq!(
            map.hints(Context::Input),
            ["Enter send", "Tab panes", "F1 help"]
        );
        assert_eq!(
            map.hints(Context::Chat),
            ["↑↓ select", "y copy", "1-9 open citation", "q quit"]
        );
        assert_eq!(
            map.hints(Context::Scenarios),
            ["←→ pick", "r regen", "e export", "1-9 cite"]
        );
        assert_eq!(
            map.hints(Context::Lifecycle),
            ["f filter", "Enter waterfall", "c cancel"]
        );
        assert_eq!(
            map.hints(Context::Search),
            ["↑↓ select", "Enter open", "Esc close"]
        );
    }

    #[test]
    fn every_hint_names_a_bound_action() {
        let map = Keymap::default();
        for hint in HINTS {
            for action in hint.actions {
                assert!(
                    map.binding_for(hint.context, *action).is_some(),
                    "hint {:?}: {action:?} has no key in {:?}",
                    hint.text,
                    hint.context
                );
            }
        }
    }
}
