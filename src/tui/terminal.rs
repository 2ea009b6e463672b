//! The terminal's modes, and every way out of them: what the TUI sets up
//! (raw mode, the alternate screen, and, when turned on through this module,
//! bracketed paste, mouse capture and keyboard-enhancement flags), how it
//! is undone, and the signals that end, stop or continue the TUI.
//!
//! Invariants:
//! - [`restore`] undoes every mode this module knows, whether or not it was
//!   turned on (each undo is harmless when the mode is off), so a mode set
//!   elsewhere with crossterm directly is undone too. It is best effort and
//!   idempotent: it never fails and can run any number of times.
//! - Every way out restores: a normal quit and an error (the caller of
//!   [`enter`]), a panic on the TUI's thread (the panic hook restores, then
//!   runs the previous hook, so the message lands on a usable screen),
//!   SIGINT/SIGQUIT/SIGTERM/SIGHUP ([`Signals`]: the loop returns
//!   [`super::Exit::Signal`], the caller restores, the process exits
//!   128 + N), and SIGTSTP ([`suspend`]: restore, stop, and on SIGCONT
//!   re-enter every mode and redraw in full).
//! - While the TUI has the terminal, a panic on another thread (a blocking
//!   task, a loader) is logged, not printed over the screen: it does not end
//!   the TUI, which goes on drawing.
//! - The signal handlers are installed before raw mode is entered, so no
//!   signal can find the terminal raw with its default action in place.

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crossterm::event::{
    DisableBracketedPaste, DisableFocusChange, DisableMouseCapture, EnableBracketedPaste,
    EnableMouseCapture, KeyboardEnhancementFlags, PopKeyboardEnhancementFlags,
    PushKeyboardEnhancementFlags,
};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute, queue};
use tokio::signal::unix::{Signal, SignalKind, signal};

pub use signal_hook::consts::{SIGCONT, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTSTP};

/// The TUI's terminal: ratatui's, on [`super::backend::Backend`].
pub type DefaultTerminal = ratatui::Terminal<super::backend::Backend<io::Stdout>>;

/// The TUI has the terminal (between [`enter`] and [`restore`]).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Modes turned on through this module, replayed after a stop.
static PASTE: AtomicBool = AtomicBool::new(false);
static MOUSE: AtomicBool = AtomicBool::new(false);
/// Keyboard-enhancement flags pushed (bits; 0: none).
static KEYBOARD: AtomicU8 = AtomicU8::new(0);
/// The thread that runs the TUI loop: a panic there ends the TUI.
static TUI_THREAD: Mutex<Option<std::thread::ThreadId>> = Mutex::new(None);
/// [`suspend`] resumed the terminal already: the SIGCONT that woke it up
/// needs no second resume.
static RESUMED: AtomicBool = AtomicBool::new(false);

/// Take the terminal: the panic hook, raw mode, the alternate screen. The
/// caller restores with [`restore`] on every way out.
pub fn enter() -> io::Result<DefaultTerminal> {
    install_panic_hook();
    if let Ok(mut thread) = TUI_THREAD.lock() {
        *thread = Some(std::thread::current().id());
    }
    ACTIVE.store(true, Ordering::SeqCst);
    let entered = enter_modes()
        .and_then(|()| ratatui::Terminal::new(super::backend::Backend::new(io::stdout())));
    if entered.is_err() {
        restore();
    }
    entered
}

/// Raw mode, the alternate screen, and what was turned on through this
/// module.
fn enter_modes() -> io::Result<()> {
    enable_raw_mode()?;
    let mut out = io::stdout();
    queue!(out, EnterAlternateScreen)?;
    if PASTE.load(Ordering::SeqCst) {
        queue!(out, EnableBracketedPaste)?;
    }
    if MOUSE.load(Ordering::SeqCst) {
        queue!(out, EnableMouseCapture)?;
    }
    let keyboard = KEYBOARD.load(Ordering::SeqCst);
    if keyboard != 0 {
        queue!(
            out,
            PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::from_bits_truncate(keyboard))
        )?;
    }
    out.flush()
}

/// Turn on bracketed paste (and again after a stop).
pub fn enable_bracketed_paste() -> io::Result<()> {
    PASTE.store(true, Ordering::SeqCst);
    execute!(io::stdout(), EnableBracketedPaste)
}

/// Turn on mouse capture (and again after a stop).
pub fn enable_mouse_capture() -> io::Result<()> {
    MOUSE.store(true, Ordering::SeqCst);
    execute!(io::stdout(), EnableMouseCapture)
}

/// Push keyboard-enhancement `flags` (and again after a stop). Only after
/// checking the terminal supports them, after the first frame.
pub fn push_keyboard_flags(flags: KeyboardEnhancementFlags) -> io::Result<()> {
    KEYBOARD.store(flags.bits(), Ordering::SeqCst);
    execute!(io::stdout(), PushKeyboardEnhancementFlags(flags))
}

/// Whether the terminal speaks the keyboard-enhancement protocol. crossterm
/// asks and waits up to 2 s for an answer a terminal may never give, so
/// this runs on the blocking pool, after the first frame, before the UI
/// reads keys (keys typed meanwhile wait in the terminal, none are lost).
pub async fn keyboard_enhancement_supported() -> bool {
    tokio::task::spawn_blocking(|| {
        crossterm::terminal::supports_keyboard_enhancement().unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Give the terminal back as it was: mouse capture, bracketed paste, focus
/// reports and keyboard-enhancement flags off (the flags are popped while
/// still on the alternate screen, whose flag stack they belong to), the
/// alternate screen left, the cursor shown, raw mode off. Best effort;
/// harmless when the TUI never took the terminal.
pub fn restore() {
    ACTIVE.store(false, Ordering::SeqCst);
    let mut out = io::stdout();
    let _ = queue!(
        out,
        DisableMouseCapture,
        DisableBracketedPaste,
        DisableFocusChange,
        PopKeyboardEnhancementFlags,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = out.flush();
    let _ = disable_raw_mode();
}

/// Whether the TUI has the terminal now.
pub fn is_active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// Take the terminal again after a stop (SIGCONT): whatever the shell did
/// to it meanwhile (a job-control shell puts its own modes back), every
/// mode is set afresh, and the next draw repaints the whole screen.
pub fn resume(terminal: &mut DefaultTerminal) -> io::Result<()> {
    // Crossterm skips enabling raw mode when it believes it is on already;
    // after a stop it may not be, so undo everything first.
    restore();
    ACTIVE.store(true, Ordering::SeqCst);
    enter_modes()?;
    repaint_all(terminal)
}

/// Make the next draw repaint every cell: clear the screen, then draw an
/// empty frame so that what ratatui believes is on screen (blank) is what
/// is. `Terminal::clear` would do it too, but it asks the terminal for the
/// cursor position, a query that can stall.
fn repaint_all(terminal: &mut DefaultTerminal) -> io::Result<()> {
    execute!(
        io::stdout(),
        crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
    )?;
    terminal.draw(|_| {})?;
    Ok(())
}

/// SIGTSTP: give the terminal back, stop (SIGSTOP, which cannot be caught),
/// and once continued take it again and repaint in full.
pub fn suspend(terminal: &mut DefaultTerminal) -> io::Result<()> {
    restore();
    RESUMED.store(true, Ordering::SeqCst);
    // Returns once the process is continued.
    signal_hook::low_level::raise(signal_hook::consts::SIGSTOP)?;
    resume(terminal)
}

/// A SIGCONT arrived: resume unless [`suspend`] has just done so (it was
/// this SIGCONT that woke it). After a stop from outside (SIGSTOP, which
/// is never seen), this is where the terminal is taken again.
pub fn continued(terminal: &mut DefaultTerminal) -> io::Result<()> {
    if RESUMED.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    resume(terminal)
}

/// Install, once, the hook that restores the terminal before a panic on the
/// TUI's thread is reported (by the hook that was there before).
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !is_active() {
                previous(info);
                return;
            }
            let on_tui = TUI_THREAD
                .lock()
                .ok()
                .and_then(|t| *t)
                .is_some_and(|id| id == std::thread::current().id());
            if on_tui {
                restore();
                previous(info);
            } else {
                // Printing would scribble over the screen the TUI goes on
                // drawing; the log keeps it.
                tracing::error!(
                    thread = std::thread::current().name().unwrap_or("unnamed"),
                    panic = %info,
                    "a panic on another thread while the TUI runs"
                );
            }
        }));
    });
}

impl super::Exit {
    /// The process's exit status: 0 after a quit, 128 + N after signal N.
    pub fn code(self) -> u8 {
        match self {
            super::Exit::Quit => 0,
            super::Exit::Signal(n) => exit_status(n),
        }
    }
}

/// What a signal asks of the TUI loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// Restore, save, exit with 128 + this signal's number.
    Exit(i32),
    /// SIGTSTP: [`suspend`].
    Suspend,
    /// SIGCONT: [`continued`].
    Continued,
}

/// What loreweave does with signal `signal` while the TUI runs.
pub fn event_for(signal: i32) -> Option<SignalEvent> {
    match signal {
        SIGINT | SIGQUIT | SIGTERM | SIGHUP => Some(SignalEvent::Exit(signal)),
        SIGTSTP => Some(SignalEvent::Suspend),
        SIGCONT => Some(SignalEvent::Continued),
        _ => None,
    }
}

/// The exit status after signal `signal`: 128 + its number, as a shell
/// reports a process the signal killed (255 at most).
pub fn exit_status(signal: i32) -> u8 {
    u8::try_from(128 + signal.clamp(0, 127)).unwrap_or(u8::MAX)
}

/// The signals the TUI handles: SIGINT, SIGQUIT, SIGTERM and SIGHUP end it,
/// SIGTSTP stops it, SIGCONT continues it. Once created, these signals no
/// longer have their default action in this process.
#[derive(Debug)]
pub struct Signals {
    streams: Vec<(i32, Signal)>,
}

impl Signals {
    /// Install the handlers (needs a tokio runtime). Call before [`enter`].
    pub fn new() -> io::Result<Self> {
        let streams = [SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGTSTP, SIGCONT]
            .into_iter()
            .map(|n| Ok((n, signal(SignalKind::from_raw(n))?)))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { streams })
    }

    /// The next signal. Cancel-safe: a signal not yet taken stays pending.
    pub async fn recv(&mut self) -> SignalEvent {
        let waits = self
            .streams
            .iter_mut()
            .map(|(n, stream)| Box::pin(async move { stream.recv().await.map(|()| *n) }));
        match futures::future::select_all(waits).await {
            (Some(n), _, _) => event_for(n).unwrap_or(SignalEvent::Exit(n)),
            // A stream ends only when the runtime shuts down.
            (None, _, _) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_is_128_plus_the_signal() {
        assert_eq!(exit_status(SIGINT), 130);
        assert_eq!(exit_status(SIGQUIT), 131);
        assert_eq!(exit_status(SIGTERM), 143);
        assert_eq!(exit_status(SIGHUP), 129);
        assert_eq!(exit_status(127), 255);
        assert_eq!(exit_status(500), 255);
        assert_eq!(super::super::Exit::Quit.code(), 0);
        assert_eq!(super::super::Exit::Signal(SIGQUIT).code(), 131);
    }

    #[test]
    fn every_handled_signal_has_its_event() {
        for n in [SIGINT, SIGQUIT, SIGTERM, SIGHUP] {
            assert_eq!(event_for(n), Some(SignalEvent::Exit(n)));
        }
        assert_eq!(event_for(SIGTSTP), Some(SignalEvent::Suspend));
        assert_eq!(event_for(SIGCONT), Some(SignalEvent::Continued));
        assert_eq!(event_for(signal_hook::consts::SIGWINCH), None);
    }
}
