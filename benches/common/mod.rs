//! What the session benches share: the same passages and the same long
//! session, so `sessions` (reopen cost) and `peers` (first frame with a
//! session to reopen) measure the same thing.

use loreweave::domain::{Location, Passage, Role};
use loreweave::store::{Db, MessageStatus, NewMessage};

/// A passage like the ones a reply cites.
pub fn passage(n: usize) -> Passage {
    Passage {
        id: format!("/notes/doc{n}.md#0"),
        title: format!("Document {n}"),
        source: format!("doc{n}.md"),
        kind: None,
        heading: Some("History".into()),
        text: "The amber gate was raised in the old age, and its keepers still walk the \
               ring of stones at dusk and at dawn, as their oath demands."
            .into(),
        score: 3.5,
        entities: Vec::new(),
        location: Location {
            trail: vec!["History".into()],
            lines: Some((12, 14)),
        },
    }
}

/// Append `messages` messages to session `session` (questions and replies
/// citing five passages each), one transaction per message as the app
/// commits them. `marker` ends the last reply, for a screen to wait for.
pub fn fill_session(
    db: &mut Db,
    session: i64,
    messages: usize,
    marker: Option<&str>,
) -> Result<(), loreweave::store::StoreError> {
    for i in 0..messages {
        let message = if i % 2 == 0 {
            NewMessage::user(
                format!("question {i} about the amber gate?"),
                MessageStatus::Sent,
            )
        } else {
            let mut text =
                "The amber gate is kept by the wardens. [1] They walk the ring at dusk. [2] "
                    .repeat(4);
            if i + 1 >= messages
                && let Some(marker) = marker
            {
                text.push_str(marker);
            }
            let mut m = NewMessage::new(Role::Assistant, text, MessageStatus::Done);
            m.backend = Some("offline".into());
            m.passages = (0..5).map(passage).collect();
            m
        };
        db.append_message(session, message)?;
    }
    Ok(())
}
