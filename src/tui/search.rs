//! `/kb search QUERY` off the UI loop: the search runs on tokio's blocking
//! pool against the knowledge base the `KbHandle` holds now, and its
//! result comes back through a channel the loop's `select!` listens on.
//!
//! Invariants: nothing here blocks the caller (the index is searched only
//! inside `spawn_blocking`); every started search sends exactly one
//! `SearchDone`, even when the search fails or panics, unless the loop has
//! gone (the send is then dropped); the overlay is opened only when a
//! search really starts, and a search that cannot start says why in the
//! status line instead.

use tokio::sync::mpsc::UnboundedSender;

use crate::backends::local::{KbHandle, KbState};
use crate::ui::{Found, SEARCH_TOP_K, SearchDone, ViewState};

/// Start searching for `query` and open the overlay that waits for it, or
/// say why no search can run now (the message for the status line).
/// `local`: whether the retriever is the built-in knowledge base.
///
/// # Panics
/// When called outside a tokio runtime.
pub fn start(
    kb: &KbHandle,
    local: bool,
    query: String,
    view: &mut ViewState,
    tx: &UnboundedSender<SearchDone>,
) -> Result<(), String> {
    if !local {
        return Err(
            "the retriever is not local: its knowledge base lives in the pipeline, \
             so /kb search has nothing to search here"
                .into(),
        );
    }
    let base = match kb.state() {
        KbState::Ready(base, _) => base,
        KbState::Building => {
            return Err("the knowledge base is still opening: search again in a moment".into());
        }
        KbState::Failed(error) => {
            return Err(format!(
                "the knowledge base could not be opened: {}",
                crate::sanitize::one_line(&error)
            ));
        }
    };
    let seq = view.open_search(query.clone());
    let tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let searched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            base.search(&query, SEARCH_TOP_K)
        }));
        let result = match searched {
            Ok(Ok(passages)) => Ok(Found {
                kb: base.name().to_owned(),
                passages,
            }),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the search panicked".to_owned()),
        };
        if let Err(error) = &result {
            tracing::warn!(%error, "kb search failed");
        }
        // The loop may have ended meanwhile; nobody is left to show it.
        let _ = tx.send(SearchDone { seq, result });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::kb::embedded_lore;
    use crate::ui::{SearchResults, Theme};

    #[tokio::test]
    async fn a_ready_kb_is_searched_off_the_loop_and_the_overlay_gets_the_result() {
        let kb = KbHandle::build_now(embedded_lore()).expect("the sample lore builds");
        let mut view = ViewState::new(Theme::plain(), crate::engine::workspace::ConversationId(1));
        let (tx, mut rx) = mpsc::unbounded_channel();
        start(&kb, true, "shattered waystone".into(), &mut view, &tx).expect("starts");
        let search = view.search.as_ref().expect("the overlay opens at once");
        assert_eq!(search.results, SearchResults::Pending);
        assert_eq!(search.query, "shattered waystone");
        let done = rx.recv().await.expect("one result");
        assert_eq!(done.seq, search.seq);
        let found = done.result.clone().expect("the search works");
        assert!(!found.passages.is_empty());
        assert!(found.passages.len() <= SEARCH_TOP_K);
        assert!(
            found.passages[0].source.contains("waystone"),
            "{:?}",
            found.passages[0].source
        );
        assert!(view.search_finished(done));
        assert!(matches!(
            view.search.as_ref().map(|s| &s.results),
            Some(SearchResults::Found(_))
        ));
    }

    #[tokio::test]
    async fn a_result_for_an_older_or_closed_search_is_not_shown() {
        let kb = KbHandle::build_now(embedded_lore()).expect("the sample lore builds");
        let mut view = ViewState::new(Theme::plain(), crate::engine::workspace::ConversationId(1));
        let (tx, mut rx) = mpsc::unbounded_channel();
        start(&kb, true, "waystone".into(), &mut view, &tx).expect("starts");
        start(&kb, true, "ford".into(), &mut view, &tx).expect("starts");
        let mut results = vec![
            rx.recv().await.expect("first"),
            rx.recv().await.expect("second"),
        ];
        results.sort_by_key(|d| d.seq);
        let [older, newer] = <[SearchDone; 2]>::try_from(results).expect("two");
        assert!(!view.search_finished(older), "the older search is stale");
        assert_eq!(
            view.search.as_ref().map(|s| s.results.clone()),
            Some(SearchResults::Pending)
        );
        view.search = None;
        assert!(!view.search_finished(newer), "the overlay was closed");
        assert!(view.search.is_none());
    }

    #[tokio::test]
    async fn no_search_while_the_kb_opens_or_with_a_remote_retriever() {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let kb = KbHandle::start_open(move || {
            // Stays opening until the test ends.
            let _ = wait.recv();
            Err("closed".into())
        });
        let mut view = ViewState::new(Theme::plain(), crate::engine::workspace::ConversationId(1));
        let (tx, _rx) = mpsc::unbounded_channel();
        let opening = start(&kb, true, "waystone".into(), &mut view, &tx).expect_err("opening");
        assert!(opening.contains("still opening"), "{opening}");
        let remote = start(&kb, false, "waystone".into(), &mut view, &tx).expect_err("remote");
        assert!(remote.contains("lives in the pipeline"), "{remote}");
        assert!(view.search.is_none(), "no overlay opens");
        drop(release);
    }
}
