//! The offline chat answer: extractive, no language model. It quotes the
//! passage sentences that share the most content words with the question.
//! Invariants: every quoted sentence is copied from a passage (`**` removed,
//! whitespace collapsed, possibly shortened with "…"), every citation `[n]`
//! refers to a provided passage, and the Sources list holds exactly the cited
//! passages in citation order.

use std::collections::BTreeSet;

use crate::domain::Passage;

use super::text::{content_stems, one_line, reason_phrase, sentences};

/// At most this many sentences in an answer.
const MAX_SENTENCES: usize = 3;
/// At most this many sentences from one passage.
const MAX_PER_PASSAGE: usize = 2;
/// Sentences longer than this (in chars) are shortened at a word boundary.
const MAX_SENTENCE_CHARS: usize = 400;

/// One candidate sentence with its score and where it came from.
#[derive(Debug)]
struct Scored {
    score: usize,
    passage: usize,
    position: usize,
    text: String,
}

/// Extractive offline answer, markdown, with citations `[n]` (passage
/// `passages[n-1]`).
///
/// A sentence scores two points per question stem it contains and one per
/// question stem found only in its passage's title or heading (so "who is X?"
/// finds X's own page even when its sentences say "she"). Only sentences that
/// score above zero are quoted.
pub fn answer(question: &str, passages: &[Passage], no_lore_reason: Option<&str>) -> String {
    if passages.is_empty()
        && let Some(reason) = no_lore_reason
    {
        return format!(
            "*Offline answer.* No lore: {}, so I can't answer from the knowledge base.",
            reason_phrase(reason)
        );
    }

    let picked = pick_sentences(question, passages);
    if picked.is_empty() {
        let mut out = String::from("*Offline answer.* I found nothing in the lore about that.");
        if let Some(reason) = no_lore_reason {
            out.push_str(&format!(" (No lore: {}.)", reason_phrase(reason)));
        }
        return out;
    }

    let body = picked
        .iter()
        .map(|s| format!("{} [{}]", s.text, s.passage + 1))
        .collect::<Vec<_>>()
        .join(" ");
    let cited: BTreeSet<usize> = picked.iter().map(|s| s.passage).collect();
    let mut out =
        String::from("*Offline answer, extracted from the lore (no language model).*\n\n");
    out.push_str(&body);
    out.push_str("\n\n**Sources**");
    for index in cited {
        if let Some(passage) = passages.get(index) {
            // Where exactly: path, heading trail and lines when known.
            let mut place = one_line(&passage.source);
            if !passage.location.is_unknown() {
                place.push_str(" › ");
                place.push_str(&one_line(&passage.location.to_string()));
            }
            out.push_str(&format!(
                "\n- [{}] {} ({place})",
                index + 1,
                one_line(&passage.title),
            ));
        }
    }
    out
}

/// The best sentences, best first: at most [`MAX_SENTENCES`], at most
/// [`MAX_PER_PASSAGE`] from one passage, each scoring above zero.
fn pick_sentences(question: &str, passages: &[Passage]) -> Vec<Scored> {
    let wanted = content_stems(question);
    if wanted.is_empty() {
        return Vec::new();
    }
    let mut scored = Vec::new();
    for (passage, p) in passages.iter().enumerate() {
        let mut label = p.title.clone();
        if let Some(heading) = &p.heading {
            label.push(' ');
            label.push_str(heading);
        }
        let label_stems = content_stems(&label);
        for (position, sentence) in sentences(&p.text).into_iter().enumerate() {
            let stems = content_stems(&sentence);
            let in_sentence = wanted.iter().filter(|w| stems.contains(w)).count();
            let in_label_only = wanted
                .iter()
                .filter(|w| !stems.contains(w) && label_stems.contains(w))
                .count();
            let score = 2 * in_sentence + in_label_only;
            // A sentence with none of the question's words is quoted only
            // when it has some substance of its own.
            if score > 0 && (in_sentence > 0 || stems.len() >= 3) {
                scored.push(Scored {
                    score,
                    passage,
                    position,
                    text: shorten(&sentence),
                });
            }
        }
    }
    scored.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(a.passage.cmp(&b.passage))
            .then(a.position.cmp(&b.position))
    });

    let mut picked: Vec<Scored> = Vec::new();
    for candidate in scored {
        if picked.len() == MAX_SENTENCES {
            break;
        }
        let from_same = picked
            .iter()
            .filter(|s| s.passage == candidate.passage)
            .count();
        let duplicate = picked.iter().any(|s| s.text == candidate.text);
        if from_same < MAX_PER_PASSAGE && !duplicate {
            picked.push(candidate);
        }
    }
    picked
}

/// Shortens an overlong sentence at a word boundary, marking the cut.
fn shorten(sentence: &str) -> String {
    if sentence.chars().count() <= MAX_SENTENCE_CHARS {
        return sentence.to_owned();
    }
    let mut cut: String = sentence.chars().take(MAX_SENTENCE_CHARS).collect();
    if let Some(space) = cut.rfind(' ') {
        cut.truncate(space);
    }
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::offline::tests::passage;

    fn lore() -> Vec<Passage> {
        vec![
            passage(
                "The Shattered Waystone",
                "shattered-waystone.md",
                "place",
                "The **Shattered Waystone** is guarded by **Warden Ilsa Marrow**, who has kept its vigil for thirty winters. \
                 Travellers leave salt at its foot.",
                &[
                    ("the Shattered Waystone", "place"),
                    ("Warden Ilsa Marrow", "npc"),
                ],
            ),
            passage(
                "The Lantern Guild",
                "lantern-guild.md",
                "faction",
                "The **Lantern Guild** trades in light and secrets. Its masters covet the waystone's shards.",
                &[("the Lantern Guild", "faction")],
            ),
        ]
    }

    #[test]
    fn answers_who_guards_the_waystone() {
        let out = answer("who guards the waystone?", &lore(), None);
        assert!(
            out.starts_with("*Offline answer, extracted from the lore (no language model).*\n\n")
        );
        let body = out.lines().nth(2).unwrap();
        assert!(
            body.starts_with(
                "The Shattered Waystone is guarded by Warden Ilsa Marrow, who has kept its vigil for thirty winters. [1]"
            ),
            "{out}"
        );
        assert!(!out.contains("**Shattered"), "{out}");
        assert!(out.contains("**Sources**\n- [1] The Shattered Waystone (shattered-waystone.md)"));
    }

    #[test]
    fn citations_reference_only_provided_passages() {
        let passages = lore();
        for question in [
            "who guards the waystone?",
            "what does the lantern guild covet?",
            "salt",
            "Lantern Guild",
        ] {
            let out = answer(question, &passages, None);
            let mut rest = out.as_str();
            let mut cited = Vec::new();
            while let Some(open) = rest.find('[') {
                let after = &rest[open + 1..];
                let close = after.find(']').unwrap();
                cited.push(after[..close].parse::<usize>().unwrap());
                rest = &after[close + 1..];
            }
            assert!(!cited.is_empty(), "{question}: {out}");
            assert!(
                cited.iter().all(|&n| (1..=passages.len()).contains(&n)),
                "{question}: {out}"
            );
            // Sources list exactly the cited passages, in order.
            let sources: Vec<&str> = out.lines().filter(|l| l.starts_with("- [")).collect();
            let mut expected: Vec<usize> = cited.clone();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(sources.len(), expected.len(), "{out}");
            for (line, n) in sources.iter().zip(&expected) {
                assert!(line.starts_with(&format!("- [{n}] ")), "{out}");
            }
        }
    }

    #[test]
    fn at_most_three_sentences_two_per_passage() {
        let passages = vec![passage(
            "Moths",
            "moths.md",
            "creature",
            "Moths gather at dusk. Moths fear salt. Moths eat glass. Moths sing.",
            &[],
        )];
        let out = answer("tell me about moths", &passages, None);
        assert_eq!(
            out.lines().nth(2).unwrap().matches(" [1]").count(),
            2,
            "{out}"
        );
        assert!(
            out.contains("Moths gather at dusk. [1] Moths fear salt. [1]"),
            "{out}"
        );
    }

    #[test]
    fn answers_from_the_title_when_sentences_say_she() {
        let passages = vec![
            passage(
                "The Lantern Guild",
                "guild.md",
                "faction",
                "A guild of lamplighters and spies.",
                &[],
            ),
            passage(
                "Warden Ilsa Marrow",
                "ilsa.md",
                "npc",
                "She has kept the stone for thirty years and trusts no one.",
                &[],
            ),
        ];
        let out = answer("Who is Ilsa Marrow?", &passages, None);
        assert!(
            out.contains("She has kept the stone for thirty years and trusts no one. [2]"),
            "{out}"
        );
        assert!(!out.contains("[1]"), "{out}");
    }

    #[test]
    fn no_lore_forms() {
        assert_eq!(
            answer("who guards the waystone?", &[], None),
            "*Offline answer.* I found nothing in the lore about that."
        );
        assert_eq!(
            answer(
                "who guards the waystone?",
                &[],
                Some("retrieval timed out after 10 s")
            ),
            "*Offline answer.* No lore: retrieval timed out after 10 s, so I can't answer from the knowledge base."
        );
        assert_eq!(
            answer("what is the price of turnips?", &lore(), None),
            "*Offline answer.* I found nothing in the lore about that."
        );
        assert_eq!(
            answer(
                "what is the price of turnips?",
                &lore(),
                Some("the breaker is open.")
            ),
            "*Offline answer.* I found nothing in the lore about that. (No lore: the breaker is open.)"
        );
        assert_eq!(
            answer("who is it?", &lore(), None),
            "*Offline answer.* I found nothing in the lore about that."
        );
    }
}
