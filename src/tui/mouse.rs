//! The mouse, when `--mouse` or `[ui] mouse = true` turned capture on: the
//! wheel scrolls the pane under the pointer (as its arrow keys do) and a
//! click focuses the pane under it. Overlays take the wheel for themselves
//! and ignore clicks. Positions are mapped through `ui::ScreenLayout`, the
//! same rectangles the frame was drawn with.

use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::keys::scroll_lines;
use crate::engine::Engine;
use crate::keymap::Context;
use crate::ui::{Focus, ScreenLayout, ViewState};

/// Lines one wheel notch scrolls.
const WHEEL_LINES: usize = 3;

/// Whether the event changed anything on screen.
pub fn on_mouse(event: MouseEvent, area: Rect, view: &mut ViewState, engine: &Engine) -> bool {
    let up = match event.kind {
        MouseEventKind::ScrollUp => true,
        MouseEventKind::ScrollDown => false,
        MouseEventKind::Down(MouseButton::Left) => {
            let context = view.key_context();
            if context != view.focus.context() {
                return false; // an overlay is open
            }
            let Some(pane) =
                ScreenLayout::of(area, view).and_then(|l| l.pane_at(event.column, event.row))
            else {
                return false;
            };
            view.focus = pane;
            return true;
        }
        _ => return false,
    };
    let context = view.key_context();
    let context = if context != view.focus.context() {
        context
    } else {
        match ScreenLayout::of(area, view).and_then(|l| l.pane_at(event.column, event.row)) {
            Some(Focus::Input) | None => return false,
            Some(pane) => pane.context(),
        }
    };
    if matches!(context, Context::Input) {
        return false;
    }
    scroll_lines(context, up, WHEEL_LINES, view, engine);
    true
}
