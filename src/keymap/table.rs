//! The default bindings, the slash commands and the status-bar hints: the
//! one place a key, a command or a hint is written down. Everything that
//! shows keys (help overlay, status bar, docs/keys.md) reads these tables.
//! After changing one, regenerate the docs:
//! `UPDATE_DOCS=1 cargo test --lib keymap::docs`.

use crossterm::event::KeyCode::{
    self, BackTab, Backspace, Down, End, Enter, Esc, F, Home, Left, PageDown as PgDn,
    PageUp as PgUp, Right, Tab, Up,
};

use super::Action::{self as A, OpenCitation};
use super::Context::{
    self, Chat, Citation, Detail, Global, Help as HelpOverlay, Input, Lifecycle, Main, Panes,
    Scenarios, Search,
};
use super::{Binding, Hint, Key, PRESSED, SlashCommand};

const fn alt(code: KeyCode) -> Key {
    Key::Chord(code, crossterm::event::KeyModifiers::ALT)
}

const fn k(code: KeyCode) -> Key {
    Key::plain(code)
}

const fn c(ch: char) -> Key {
    Key::char(ch)
}

const fn ctrl(ch: char) -> Key {
    Key::ctrl(ch)
}

const DIGIT: Key = Key::Digit;

const fn b(
    context: Context,
    keys: &'static [Key],
    action: A,
    description: &'static str,
) -> Binding {
    Binding::new(context, keys, action, description)
}

/// Every key binding, grouped by context; within a context, in the order
/// the help overlay and the docs list them.
#[rustfmt::skip]
pub(super) const BINDINGS: &[Binding] = &[
    b(Global, &[ctrl('c')], A::Interrupt, "cancel the running reply; with nothing running, press twice to quit"),
    b(Main, &[k(Tab)], A::FocusNext, "in the input, complete a /command or its argument when one fits; else focus the next pane: input, chat, scenarios, lifecycle"),
    b(Main, &[k(BackTab)], A::FocusPrev, "focus the previous pane"),
    b(Main, &[k(F(1))], A::Help, "open the help overlay"),
    b(Main, &[ctrl('o')], A::Sessions, "the session picker: type to filter, ↑↓ choose, Enter opens, Ctrl-R renames, Ctrl-D deletes, Esc closes"),
    b(Input, &[k(Enter), ctrl('m')], A::Submit, "send the input: a question, a scenario request or a /command"),
    b(Input, &[alt(Enter), ctrl('j')], A::Newline, "insert a newline (Shift-Enter too, where the terminal reports it); the input grows to 6 lines, then scrolls"),
    b(Input, &[k(Up)], A::HistoryPrev, "on the first line: the previous input of this session; else a line up"),
    b(Input, &[k(Down)], A::HistoryNext, "on the last line: the next input (past the newest, what was typed); else a line down"),
    b(Input, &[k(Esc)], A::FocusChat, "focus the chat pane"),
    b(Panes, &[c('q')], A::Quit, "quit"),
    b(Panes, &[c('?')], A::Help, "open the help overlay"),
    b(Panes, &[c('i'), k(Esc)], A::FocusInput, "focus the input"),
    b(Panes, &[c('/')], A::StartCommand, "focus the input and type / to start a command"),
    b(Panes, &[c('z')], A::Zoom, "zoom the focused pane to the whole screen; again to go back"),
    b(Panes, &[c('y')], A::Copy, "copy the selected message, the shown scenario or the selected request (clipboard, else OSC 52)"),
    b(Chat, &[k(Up)], A::SelectPrev, "select the message above (highlighted; y copies it)"),
    b(Chat, &[k(Down)], A::SelectNext, "select the message below; past the newest, back to following"),
    b(Chat, &[c('k')], A::ScrollUp, "scroll back one line"),
    b(Chat, &[c('j')], A::ScrollDown, "scroll forward one line"),
    b(Chat, &[k(PgUp)], A::PageUp, "scroll back ten lines"),
    b(Chat, &[k(PgDn)], A::PageDown, "scroll forward ten lines"),
    b(Chat, &[k(Home), c('g')], A::Top, "oldest line"),
    b(Chat, &[k(End), c('G')], A::Bottom, "newest line"),
    b(Chat, &[DIGIT], OpenCitation(PRESSED), "open the passage cited as [n] by the newest reply with lore"),
    b(Chat, &[c('w')], A::OpenPipeline, "the waterfall of the pipeline behind the selected message (else the lowest reply on screen)"),
    b(Chat, &[c('s')], A::Resend, "send the messages left unsent when loreweave stopped (as /resend)"),
    b(Scenarios, &[k(Left), c('h')], A::PrevScenario, "show the previous scenario"),
    b(Scenarios, &[k(Right), c('l')], A::NextScenario, "show the next scenario"),
    b(Scenarios, &[k(Up), c('k')], A::ScrollUp, "scroll the shown scenario up one line"),
    b(Scenarios, &[k(Down), c('j')], A::ScrollDown, "scroll the shown scenario down one line"),
    b(Scenarios, &[k(PgUp)], A::PageUp, "scroll up ten lines"),
    b(Scenarios, &[k(PgDn)], A::PageDown, "scroll down ten lines"),
    b(Scenarios, &[k(Home), c('g')], A::Top, "to the top"),
    b(Scenarios, &[k(End), c('G')], A::Bottom, "to the bottom"),
    b(Scenarios, &[c('r')], A::Regenerate, "regenerate the shown scenario with a fresh seed (the new one is shown)"),
    b(Scenarios, &[c('e')], A::Export, "export the shown scenario to ./<title-slug>-<seed>.md"),
    b(Scenarios, &[DIGIT], OpenCitation(PRESSED), "open the passage the shown scenario cites as [n]"),
    b(Scenarios, &[c('w')], A::OpenPipeline, "the waterfall of the pipeline that produced the shown scenario"),
    b(Lifecycle, &[k(Up), c('k')], A::ScrollUp, "select the row above"),
    b(Lifecycle, &[k(Down), c('j')], A::ScrollDown, "select the row below"),
    b(Lifecycle, &[k(PgUp)], A::PageUp, "move the selection ten rows up"),
    b(Lifecycle, &[k(PgDn)], A::PageDown, "move the selection ten rows down"),
    b(Lifecycle, &[k(Home), c('g')], A::Top, "select the first (newest) row"),
    b(Lifecycle, &[k(End), c('G')], A::Bottom, "select the last row"),
    b(Lifecycle, &[k(Enter)], A::OpenDetail, "the waterfall of the selected request's pipeline (a bar per request)"),
    b(Lifecycle, &[c('c')], A::CancelRequest, "cancel the selected request and the rest of its pipeline"),
    b(Lifecycle, &[c('b')], A::ToggleBreaker, "cycle the selected backend's breaker: auto, forced open, forced closed"),
    b(Lifecycle, &[c('f')], A::Filter, "filter the table: state:timed-out backend:NAME kind:retrieve late, or text in the label or id (terms combine; Enter applies, Esc cancels, Ctrl-U empties, empty clears)"),
    b(Lifecycle, &[c('s')], A::CycleSort, "sort by the next column: pipeline, elapsed, state, kind, backend, id (sorted rows are flat)"),
    b(Lifecycle, &[c('r')], A::InvertSort, "invert the sort"),
    b(Lifecycle, &[c(' ')], A::Pause, "pause following (the rows stay put, new requests are counted); again resumes"),
    b(HelpOverlay, &[k(Esc), c('q'), c('?'), k(F(1)), k(Enter)], A::Close, "close this help"),
    b(HelpOverlay, &[k(Up), c('k')], A::ScrollUp, "scroll up one line"),
    b(HelpOverlay, &[k(Down), c('j')], A::ScrollDown, "scroll down one line"),
    b(HelpOverlay, &[k(PgUp)], A::PageUp, "scroll up ten lines"),
    b(HelpOverlay, &[k(PgDn)], A::PageDown, "scroll down ten lines"),
    b(HelpOverlay, &[k(Home), c('g')], A::Top, "to the top"),
    b(HelpOverlay, &[k(End), c('G')], A::Bottom, "to the end"),
    b(Citation, &[DIGIT], OpenCitation(PRESSED), "show the passage cited as [n] instead"),
    b(Citation, &[k(Esc), c('q'), k(Enter)], A::Close, "close the passage"),
    b(Citation, &[c('y')], A::Copy, "copy the passage"),
    b(Detail, &[k(Up), c('k')], A::ScrollUp, "select the bar above; its events show beneath"),
    b(Detail, &[k(Down), c('j')], A::ScrollDown, "select the bar below"),
    b(Detail, &[c('w'), k(Backspace)], A::ReturnFromPipeline, "back to the reply or scenario a w jump came from"),
    b(Detail, &[k(Esc), c('q'), k(Enter)], A::Close, "close the waterfall, back to the lifecycle table"),
    b(Search, &[k(Up), c('k')], A::ScrollUp, "select the passage above, or scroll an open one up"),
    b(Search, &[k(Down), c('j')], A::ScrollDown, "select the passage below, or scroll an open one down"),
    b(Search, &[k(PgUp)], A::PageUp, "ten passages up, or ten lines in an open passage"),
    b(Search, &[k(PgDn)], A::PageDown, "ten passages down, or ten lines in an open passage"),
    b(Search, &[k(Home), c('g')], A::Top, "the best match, or the top of an open passage"),
    b(Search, &[k(End), c('G')], A::Bottom, "the last match, or the end of an open passage"),
    b(Search, &[k(Enter)], A::OpenPassage, "open the selected passage, its whole text"),
    b(Search, &[k(Esc), c('q')], A::Close, "back from an open passage to the results, else close"),
    b(Search, &[c('y')], A::Copy, "copy the open (or selected) passage"),
];

const fn cmd(
    syntax: &'static str,
    aliases: &'static [&'static str],
    example: &'static str,
    description: &'static str,
) -> SlashCommand {
    SlashCommand {
        syntax,
        aliases,
        example,
        description,
    }
}

/// Every slash command, as typed in the input (parsed by `engine::command`).
#[rustfmt::skip]
pub const COMMANDS: &[SlashCommand] = &[
    cmd("/scenario [--seed N] PROMPT", &["/s"], "/scenario --seed 7 a dark ford", "generate a scenario for PROMPT; without --seed the seed comes from the prompt"),
    cmd("/ask QUESTION", &[], "/ask generate scenario ideas?", "ask a question, even one that starts with \"generate scenario\""),
    cmd("/regen", &["/regenerate"], "/regen", "regenerate the shown scenario with a fresh seed"),
    cmd("/export", &[], "/export", "export the shown scenario to a .md file, as e does"),
    cmd("/cancel ID", &[], "/cancel k3x9qa", "cancel a request (short id or full ULID) and the rest of its pipeline"),
    cmd("/cancel", &[], "/cancel", "cancel the conversation's running reply"),
    cmd("/cancel #N", &[], "/cancel #2", "drop queued message number N"),
    cmd("/clear-queue", &[], "/clear-queue", "drop every message queued behind the running reply"),
    cmd("/chaos BACKEND latency 12s", &[], "/chaos local latency 12s", "fault injection: every call to BACKEND waits 12 s first"),
    cmd("/chaos BACKEND fail 50%", &[], "/chaos local fail 50%", "fault injection: half the calls fail at once with a transient error"),
    cmd("/chaos BACKEND hang", &[], "/chaos local hang", "fault injection: calls never answer (the deadline ends them)"),
    cmd("/chaos BACKEND off", &[], "/chaos local off", "stop fault injection on BACKEND"),
    cmd("/chaos off", &[], "/chaos off", "stop every fault injection"),
    cmd("/breaker open|close|auto BACKEND", &[], "/breaker open local", "force a backend's breaker open or closed, or hand it back to the rules"),
    cmd("/rag on|off", &[], "/rag off", "retrieval on or off for the next requests (off: no lore)"),
    cmd("/kb add PATH...", &[], "/kb add ~/notes other.md", "add files, folders or URLs to the knowledge base in use (an ingest request; c cancels)"),
    cmd("/kb use NAME", &[], "/kb use sample", "search another knowledge base (sample: the built-in lore)"),
    cmd("/kb search QUERY", &[], "/kb search shattered waystone", "search the knowledge base in use: the top 20 passages"),
    cmd("/session new [NAME]", &[], "/session new campaign", "start a new saved conversation (named from the clock without NAME)"),
    cmd("/session open NAME", &[], "/session open campaign", "switch to another session; a reply running in this one goes on and is saved there"),
    cmd("/session rename NAME", &[], "/session rename ashford", "rename the open session"),
    cmd("/session delete NAME", &[], "/session delete old", "delete a session for good, after a y to confirm (its running work stops first)"),
    cmd("/session list", &["/sessions"], "/session list", "the session picker, as Ctrl-O opens it"),
    cmd("/session export md|json", &[], "/session export md", "write the open session (messages, cited passages, scenarios) to a new file here"),
    cmd("/trace export [--redact] [FILE]", &[], "/trace export bug.jsonl", "write a JSON Lines trace (every input, event and request so far) to FILE or a new file here; --redact hides every text"),
    cmd("/resend", &[], "/resend", "send again the messages left unsent when loreweave stopped"),
    cmd("/help", &["/?"], "/help", "open the help overlay"),
    cmd("/quit", &["/q"], "/quit", "quit"),
];

const fn hint(context: Context, actions: &'static [A], text: &'static str) -> Hint {
    Hint {
        context,
        actions,
        text,
    }
}

/// Status-bar hints per focus, most useful first (a narrow terminal drops
/// them from the end). The keys come from `BINDINGS`.
#[rustfmt::skip]
pub const HINTS: &[Hint] = &[
    hint(Input, &[A::Submit], "send"),
    hint(Input, &[A::FocusNext], "panes"),
    hint(Input, &[A::Help], "help"),
    hint(Chat, &[A::SelectPrev, A::SelectNext], "select"),
    hint(Chat, &[A::Copy], "copy"),
    hint(Chat, &[OpenCitation(PRESSED)], "open citation"),
    hint(Chat, &[A::Quit], "quit"),
    hint(Scenarios, &[A::PrevScenario, A::NextScenario], "pick"),
    hint(Scenarios, &[A::Regenerate], "regen"),
    hint(Scenarios, &[A::Export], "export"),
    hint(Scenarios, &[OpenCitation(PRESSED)], "cite"),
    // Three hints keep the session and RAG segments at 120 columns; sort,
    // pause and the breaker are in the help overlay.
    hint(Lifecycle, &[A::Filter], "filter"),
    hint(Lifecycle, &[A::OpenDetail], "waterfall"),
    hint(Lifecycle, &[A::CancelRequest], "cancel"),
    hint(HelpOverlay, &[A::ScrollUp, A::ScrollDown], "scroll"),
    hint(Detail, &[A::ScrollUp, A::ScrollDown], "select"),
    hint(Detail, &[A::ReturnFromPipeline], "return"),
    hint(Detail, &[A::Close], "close"),
    hint(Search, &[A::ScrollUp, A::ScrollDown], "select"),
    hint(Search, &[A::OpenPassage], "open"),
    hint(Search, &[A::Close], "close"),
];
