//! The offline scenario writer: fills the random tables' templates with
//! names taken from the retrieved passages (or, lacking those, from the
//! tables' fallback name lists) and lays the result out as a fixed markdown
//! document.
//!
//! Invariants:
//! - The output depends only on (tables, prompt, seed, passages, reason); the
//!   only randomness is a `SmallRng` seeded with `seed`.
//! - Every substituted name is recorded once in [`ScenarioDraft::entities`]
//!   with its origin, and appears verbatim in the markdown. A name from a
//!   passage is used only if it occurs in that passage's text (`**` removed)
//!   verbatim, or differing only in the case of its first letter ("the
//!   Shattered Waystone" in "The **Shattered Waystone** is ..."); a fallback
//!   name comes verbatim from the list its origin names.
//! - A fallback list is used for a kind only when no passage name of that
//!   kind is left that is not already used in the same sentence.
//! - No placeholder is left unfilled (the tables are validated on parse).
//! - The Sources list holds exactly the passages quoted or whose names were
//!   used, by citation number.

use std::collections::BTreeSet;

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::domain::Passage;

use super::tables::{List, Tables};
use super::text::{one_line, reason_phrase, sentences, strip_bold};

/// Where a substituted name came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A fallback list of the tables, by key (e.g. `"npc_names"`).
    Table(&'static str),
    /// An entity of `passages[i]`.
    Passage(usize),
}

/// One name substituted into a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedEntity {
    pub name: String,
    /// `place`, `npc`, `faction`, `creature` or `relic`.
    pub kind: String,
    pub origin: Origin,
}

/// A written scenario: its title (without `# `), the whole markdown document,
/// and every name it used.
#[derive(Debug, Clone)]
pub struct ScenarioDraft {
    pub title: String,
    pub markdown: String,
    pub entities: Vec<UsedEntity>,
}

/// The kinds of name a template can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Place,
    Npc,
    Faction,
    Creature,
    Relic,
}

impl Role {
    const ALL: [Role; 5] = [
        Role::Place,
        Role::Npc,
        Role::Faction,
        Role::Creature,
        Role::Relic,
    ];

    fn kind(self) -> &'static str {
        match self {
            Role::Place => "place",
            Role::Npc => "npc",
            Role::Faction => "faction",
            Role::Creature => "creature",
            Role::Relic => "relic",
        }
    }

    fn fallback(self) -> List {
        match self {
            Role::Place => List::PlaceNames,
            Role::Npc => List::NpcNames,
            Role::Faction => List::FactionNames,
            Role::Creature => List::CreatureNames,
            Role::Relic => List::RelicNames,
        }
    }

    /// How many fallback names of this kind one scenario draws from first.
    fn cast_size(self) -> usize {
        match self {
            Role::Npc => 3,
            _ => 2,
        }
    }

    fn from_kind(kind: &str) -> Option<Role> {
        let kind = kind.trim();
        Role::ALL
            .into_iter()
            .find(|role| role.kind().eq_ignore_ascii_case(kind))
    }
}

/// A passage name available for a role.
#[derive(Debug, Clone)]
struct Candidate {
    name: String,
    passage: usize,
}

/// Choice weight of a name by its passage's rank: the best passage's names
/// are eight times as likely as those of the fourth and later.
fn rank_weight(passage: usize) -> u32 {
    8 >> passage.min(3)
}

/// An index drawn with the given weights, or `None` when they sum to zero.
fn weighted_index(rng: &mut SmallRng, weights: impl Iterator<Item = u32> + Clone) -> Option<usize> {
    let total: u32 = weights.clone().sum();
    if total == 0 {
        return None;
    }
    let mut roll = rng.random_range(0..total);
    for (index, weight) in weights.enumerate() {
        if roll < weight {
            return Some(index);
        }
        roll -= weight;
    }
    None
}

/// Whether `name` occurs in `plain` verbatim or with its first letter's case
/// flipped (names are often given as "the X" while the text opens "The X").
pub(crate) fn grounded_in(plain: &str, name: &str) -> bool {
    if plain.contains(name) {
        return true;
    }
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let flipped: String = if first.is_uppercase() {
        first.to_lowercase().chain(chars).collect()
    } else {
        first.to_uppercase().chain(chars).collect()
    };
    plain.contains(&flipped)
}

/// The state of one scenario being written: the rng, the names available,
/// and what has been used so far.
struct Casting<'a> {
    tables: &'a Tables,
    rng: SmallRng,
    /// Passage names per role (indexed like [`Role::ALL`]), best passage first.
    pools: [Vec<Candidate>; 5],
    /// Per role, the few fallback names this scenario draws from first, so
    /// that a scenario without lore keeps returning to the same places and
    /// people instead of naming a new one in every sentence.
    fallback_cast: [Vec<String>; 5],
    used: Vec<UsedEntity>,
}

/// A filled template.
struct Filled {
    text: String,
    /// Places substituted, in order.
    places: Vec<String>,
}

/// How a filled template is cased.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// A sentence: first letter capitalised (unless it opens with a name).
    Sentence,
    /// A fragment after a dash (an NPC's role): left as written.
    Fragment,
    /// A title: first letter and every word of table values capitalised.
    Title,
}

impl<'a> Casting<'a> {
    fn new(tables: &'a Tables, seed: u64, lore: &[Passage]) -> Self {
        let mut pools: [Vec<Candidate>; 5] = Default::default();
        for (index, passage) in lore.iter().enumerate() {
            let plain = strip_bold(&passage.text);
            for entity in &passage.entities {
                let Some(role) = Role::from_kind(&entity.kind) else {
                    continue;
                };
                let name = one_line(&entity.name);
                let usable = !name.is_empty()
                    && name.chars().count() <= 80
                    && !name.contains(['{', '}', '[', ']'])
                    && grounded_in(&plain, &name);
                if !usable {
                    tracing::debug!(name = %name, passage = index, "skipping entity not found in its passage");
                    continue;
                }
                let pool = &mut pools[role as usize];
                if !pool.iter().any(|c| c.name == name) {
                    pool.push(Candidate {
                        name,
                        passage: index,
                    });
                }
            }
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let fallback_cast = Role::ALL.map(|role| {
            tables
                .list(role.fallback())
                .choose_multiple(&mut rng, role.cast_size())
                .cloned()
                .collect()
        });
        Casting {
            tables,
            rng,
            pools,
            fallback_cast,
            used: Vec::new(),
        }
    }

    /// One entry of a list, at random.
    fn entry(&mut self, list: List) -> String {
        self.tables
            .list(list)
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or_default()
    }

    /// `count` entries of a list, distinct while the list lasts.
    fn entries(&mut self, list: List, count: usize) -> Vec<String> {
        let all = self.tables.list(list);
        let mut picked: Vec<String> = all.choose_multiple(&mut self.rng, count).cloned().collect();
        let mut i = 0;
        while picked.len() < count && !all.is_empty() {
            picked.push(all[i % all.len()].clone());
            i += 1;
        }
        picked
    }

    /// Whether a passage name of `role` not in `taken` is left.
    fn has_lore(&self, role: Role, taken: &[String]) -> bool {
        self.pools[role as usize]
            .iter()
            .any(|c| !taken.contains(&c.name))
    }

    /// Picks a name for `role` not in `taken` (when possible), preferring
    /// passage names from better-ranked passages, and records it.
    fn pick(&mut self, role: Role, taken: &[String]) -> String {
        let available: Vec<&Candidate> = self.pools[role as usize]
            .iter()
            .filter(|c| !taken.contains(&c.name))
            .collect();
        if let Some(index) = weighted_index(
            &mut self.rng,
            available.iter().map(|c| rank_weight(c.passage)),
        ) {
            let (name, passage) = (available[index].name.clone(), available[index].passage);
            self.record(&name, role, Origin::Passage(passage));
            return name;
        }
        let cast: Vec<(usize, &String)> = self.fallback_cast[role as usize]
            .iter()
            .enumerate()
            .filter(|(_, n)| !taken.contains(n))
            .collect();
        let list = self.tables.list(role.fallback());
        let name = if let Some(index) = weighted_index(
            &mut self.rng,
            cast.iter().map(|(rank, _)| rank_weight(*rank)),
        ) {
            cast[index].1.clone()
        } else {
            let fresh: Vec<&String> = list.iter().filter(|n| !taken.contains(n)).collect();
            match fresh.choose(&mut self.rng) {
                Some(name) => (*name).clone(),
                None => list.choose(&mut self.rng).cloned().unwrap_or_default(),
            }
        };
        self.record(&name, role, Origin::Table(role.fallback().key()));
        name
    }

    fn record(&mut self, name: &str, role: Role, origin: Origin) {
        if !self.used.iter().any(|u| u.name == name) {
            self.used.push(UsedEntity {
                name: name.to_owned(),
                kind: role.kind().to_owned(),
                origin,
            });
        }
    }

    /// Fills every placeholder of `template`. Names in `taken` (the names
    /// already in this sentence) are avoided, and each name chosen is added
    /// to it. Names are always kept verbatim, even at the start.
    fn fill(&mut self, template: &str, taken: &mut Vec<String>, case: Case) -> Filled {
        let mut text = String::with_capacity(template.len() + 32);
        let mut places = Vec::new();
        let mut opens_with_name = false;
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                // Unreachable for validated tables; keep the text as is.
                text.push_str(&rest[open..]);
                rest = "";
                break;
            };
            let placeholder = &after[..close];
            rest = &after[close + 1..];
            let role = match placeholder {
                "place" => Some(Role::Place),
                "npc" => Some(Role::Npc),
                "faction" => Some(Role::Faction),
                "creature" => Some(Role::Creature),
                "relic" => Some(Role::Relic),
                _ => None,
            };
            match role {
                Some(role) => {
                    let name = self.pick(role, taken);
                    push_value(&mut text, &name, true);
                    if text.len() == name.len() {
                        opens_with_name = true;
                    }
                    if role == Role::Place {
                        places.push(name.clone());
                    }
                    taken.push(name);
                }
                None => {
                    let list = match placeholder {
                        "adjective" => List::Adjectives,
                        "noun" => List::Nouns,
                        "time" => List::Times,
                        _ => List::Weather,
                    };
                    let mut word = self.entry(list);
                    if case == Case::Title {
                        word = title_case(&word);
                    }
                    push_value(&mut text, &word, false);
                }
            }
        }
        text.push_str(rest);
        if !opens_with_name && case != Case::Fragment {
            text = capitalise_first(&text);
        }
        Filled { text, places }
    }

    /// Fills a template that is a sentence of its own.
    fn sentence(&mut self, list: List) -> Filled {
        let template = self.entry(list);
        self.fill(&template, &mut Vec::new(), Case::Sentence)
    }
}

/// Appends a substituted value, mending the article before it: "a" becomes
/// "an" before a vowel, and an article is dropped before a value that brings
/// its own ("the Salt Hollows") or a name that reads as a plural ("a
/// Glasswing Moths").
fn push_value(text: &mut String, value: &str, is_name: bool) {
    if let Some((start, article)) = trailing_article(text) {
        let lower_value = value.to_lowercase();
        let own_article = ["the ", "a ", "an "]
            .iter()
            .any(|a| lower_value.starts_with(a));
        let is_indefinite = article.eq_ignore_ascii_case("a") || article.eq_ignore_ascii_case("an");
        if own_article || (is_indefinite && is_name && looks_plural(value)) {
            text.truncate(start);
        } else if is_indefinite {
            let vowel = value
                .chars()
                .next()
                .is_some_and(|c| matches!(c.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u'));
            let capital = article.starts_with('A');
            let fixed = match (vowel, capital) {
                (true, true) => "An ",
                (true, false) => "an ",
                (false, true) => "A ",
                (false, false) => "a ",
            };
            text.truncate(start);
            text.push_str(fixed);
        }
    }
    text.push_str(value);
}

/// The article ("a", "an", "the", any case) that `text` ends with, followed
/// by one space: its byte offset and spelling.
fn trailing_article(text: &str) -> Option<(usize, String)> {
    let body = text.strip_suffix(' ')?;
    let start = body
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_alphabetic())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &body[start..];
    ["a", "an", "the"]
        .iter()
        .any(|a| word.eq_ignore_ascii_case(a))
        .then(|| (start, word.to_owned()))
}

/// "Glasswing Moths" reads as a plural; "Moss" and "Ilsa Marrow" do not.
fn looks_plural(name: &str) -> bool {
    let last = name.rsplit(' ').next().unwrap_or(name).to_lowercase();
    last.len() > 3
        && last.ends_with('s')
        && !["ss", "us", "is", "'s", "’s"]
            .iter()
            .any(|s| last.ends_with(s))
}

fn capitalise_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if first.is_lowercase() => first.to_uppercase().chain(chars).collect(),
        _ => text.to_owned(),
    }
}

fn title_case(text: &str) -> String {
    text.split(' ')
        .map(capitalise_first)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The prompt as shown in the italic line: one line, markdown emphasis
/// characters escaped, at most 200 characters.
fn prompt_line(prompt: &str) -> String {
    let line: String = prompt
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut shown: String = line.chars().take(200).collect();
    if shown.len() < line.len() {
        shown.push('…');
    }
    let mut escaped = String::with_capacity(shown.len());
    for c in shown.chars() {
        if matches!(c, '\\' | '*' | '_' | '`') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Whether a sentence can be quoted as a fact: 40–300 characters, ending
/// with `.`, `!` or `?` (closing quotes aside), without braces.
fn is_fact(sentence: &str) -> bool {
    let length = sentence.chars().count();
    let core = sentence.trim_end_matches(['"', '\'', ')', '”', '’']);
    (40..=300).contains(&length)
        && core.ends_with(['.', '!', '?'])
        && !sentence.contains(['{', '}'])
}

/// The fact to quote: a sentence naming `place` from the best passage that
/// has one; else any sentence of the best passage naming `place`; else the
/// first quotable sentence, best passage first.
fn find_fact(lore: &[Passage], place: Option<&str>) -> Option<(usize, String)> {
    let facts = |p: &Passage| sentences(&p.text).into_iter().filter(|s| is_fact(s));
    if let Some(place) = place {
        let place = place.to_lowercase();
        for (index, passage) in lore.iter().enumerate() {
            if let Some(sentence) = facts(passage).find(|s| s.to_lowercase().contains(&place)) {
                return Some((index, sentence));
            }
        }
        for (index, passage) in lore.iter().enumerate() {
            if strip_bold(&passage.text).to_lowercase().contains(&place)
                && let Some(sentence) = facts(passage).next()
            {
                return Some((index, sentence));
            }
        }
    }
    lore.iter()
        .enumerate()
        .find_map(|(index, passage)| facts(passage).next().map(|s| (index, s)))
}

/// Writes a scenario. Deterministic for (tables, prompt, seed, passages,
/// reason). With `no_lore_reason` set, the passages are ignored and only the
/// tables are used.
pub fn write_scenario(
    tables: &Tables,
    prompt: &str,
    seed: u64,
    passages: &[Passage],
    no_lore_reason: Option<&str>,
) -> ScenarioDraft {
    let lore: &[Passage] = if no_lore_reason.is_some() {
        &[]
    } else {
        passages
    };
    let mut cast = Casting::new(tables, seed, lore);

    let title_template = cast.entry(List::Titles);
    let title = cast.fill(&title_template, &mut Vec::new(), Case::Title);
    let setting = cast.sentence(List::Settings);
    let hook = cast.sentence(List::Hooks);

    let adjectives = cast.entries(List::Adjectives, 3);
    let nouns = cast.entries(List::Nouns, 3);
    let encounter_templates = cast.entries(List::Encounters, 3);
    let mut encounters = Vec::with_capacity(3);
    for ((adjective, noun), template) in adjectives.iter().zip(&nouns).zip(&encounter_templates) {
        let filled = cast.fill(template, &mut Vec::new(), Case::Sentence);
        encounters.push((title_case(adjective), title_case(noun), filled.text));
    }

    // Two or three distinct NPCs: passage names while they last, table names
    // only to reach two.
    let wanted = cast.rng.random_range(2..=3);
    let mut npc_names: Vec<String> = Vec::with_capacity(wanted);
    while npc_names.len() < wanted {
        if npc_names.len() >= 2 && !cast.has_lore(Role::Npc, &npc_names) {
            break;
        }
        let name = cast.pick(Role::Npc, &npc_names);
        if npc_names.contains(&name) {
            break;
        }
        npc_names.push(name);
    }
    let mut npcs = Vec::with_capacity(npc_names.len());
    for name in &npc_names {
        let template = cast.entry(List::NpcRoles);
        let role = cast.fill(&template, &mut vec![name.clone()], Case::Fragment);
        npcs.push((name.clone(), role.text));
    }

    let complication = cast.sentence(List::Complications);
    let reward = cast.sentence(List::Rewards);

    let place = setting.places.first().or(title.places.first()).cloned();
    let fact = find_fact(lore, place.as_deref());

    let mut sources: BTreeSet<usize> = cast
        .used
        .iter()
        .filter_map(|u| match u.origin {
            Origin::Passage(index) => Some(index),
            Origin::Table(_) => None,
        })
        .collect();
    if let Some((index, _)) = &fact {
        sources.insert(*index);
    }

    let mut md = String::with_capacity(2048);
    md.push_str(&format!("# {}\n\n", title.text));
    md.push_str(&format!(
        "*Offline scenario · seed {seed} · prompt: \"{}\"*\n\n",
        prompt_line(prompt)
    ));
    if let Some(reason) = no_lore_reason {
        md.push_str(&format!(
            "> **No lore:** {}. This scenario uses only the built-in tables.\n\n",
            reason_phrase(reason)
        ));
    }
    md.push_str(&format!("## Setting\n\n{}\n\n", setting.text));
    if let Some((index, sentence)) = &fact {
        md.push_str(&format!("> From the lore: {sentence} [{}]\n\n", index + 1));
    }
    md.push_str(&format!("## Hook\n\n{}\n\n## Encounters\n\n", hook.text));
    for (n, (adjective, noun, text)) in encounters.iter().enumerate() {
        md.push_str(&format!("{}. **{adjective} {noun}** -- {text}\n", n + 1));
    }
    md.push_str("\n## NPCs\n\n");
    for (name, role) in &npcs {
        md.push_str(&format!("- **{name}** -- {role}\n"));
    }
    md.push_str(&format!("\n## Complication\n\n{}\n\n", complication.text));
    md.push_str(&format!("## Reward\n\n{}\n\n## Sources\n\n", reward.text));
    if sources.is_empty() {
        let why = match no_lore_reason {
            Some(reason) => reason_phrase(reason),
            None if passages.is_empty() => "no lore matched the prompt".to_owned(),
            None => "none of the retrieved passages could be used".to_owned(),
        };
        md.push_str(&format!("_None: {why}._\n"));
    } else {
        // One line per document, with every citation number that points
        // into it (several chunks of one document are often retrieved).
        let mut documents: Vec<(String, String, Vec<usize>)> = Vec::new();
        for index in sources.iter() {
            if let Some(passage) = lore.get(*index) {
                let (title, source) = (one_line(&passage.title), one_line(&passage.source));
                match documents.iter_mut().find(|(_, s, _)| *s == source) {
                    Some((_, _, numbers)) => numbers.push(index + 1),
                    None => documents.push((title, source, vec![index + 1])),
                }
            }
        }
        for (title, source, numbers) in documents {
            let cites: String = numbers.iter().map(|n| format!("[{n}]")).collect();
            md.push_str(&format!("- {cites} {title} ({source})\n"));
        }
    }

    ScenarioDraft {
        title: title.text,
        markdown: md,
        entities: cast.used,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::backends::offline::tables::tests::FIXTURE;
    use crate::backends::offline::tests::passage;

    fn fixture() -> Tables {
        Tables::parse(FIXTURE).unwrap()
    }

    fn lore() -> Vec<Passage> {
        vec![
            passage(
                "The Shattered Waystone",
                "shattered-waystone.md",
                "place",
                "The **Shattered Waystone** is guarded by **Warden Ilsa Marrow**, who has kept its vigil for thirty winters. \
                 On clear nights **Glasswing Moths** gather on its broken face.",
                &[
                    ("the Shattered Waystone", "place"),
                    ("Warden Ilsa Marrow", "npc"),
                    ("Glasswing Moths", "creature"),
                ],
            ),
            passage(
                "The Lantern Guild",
                "lantern-guild.md",
                "faction",
                "The **Lantern Guild** trades in light and secrets from its hall in **Emberwick**. \
                 Its master, **Corvin Hale**, covets the **Ember Crown**; his rival **Sister Vey** hides it.",
                &[
                    ("the Lantern Guild", "faction"),
                    ("Emberwick", "place"),
                    ("Corvin Hale", "npc"),
                    ("Sister Vey", "npc"),
                    ("the Ember Crown", "relic"),
                    // Not in the text: must never be used.
                    ("Phantom Name", "npc"),
                ],
            ),
            passage(
                "Rumours of the Fen",
                "fen.md",
                "rumour",
                "Folk say the **Drowned Abbey** rises from the fen when the moon is full.",
                &[("the Drowned Abbey", "place")],
            ),
        ]
    }

    /// The invariants every draft must keep, whatever the inputs.
    fn check_invariants(tables: &Tables, passages: &[Passage], draft: &ScenarioDraft) {
        let md = &draft.markdown;
        assert!(md.starts_with("# "), "{md}");
        assert_eq!(
            md.lines().next(),
            Some(format!("# {}", draft.title).as_str())
        );
        let headings: Vec<&str> = md.lines().filter(|l| l.starts_with("## ")).collect();
        assert_eq!(
            headings,
            [
                "## Setting",
                "## Hook",
                "## Encounters",
                "## NPCs",
                "## Complication",
                "## Reward",
                "## Sources"
            ],
            "{md}"
        );
        let encounters = md
            .split("## Encounters")
            .nth(1)
            .unwrap()
            .split("## NPCs")
            .next()
            .unwrap();
        let numbered: Vec<&str> = encounters
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(numbered.len(), 3, "{md}");
        for (n, line) in numbered.iter().enumerate() {
            assert!(line.starts_with(&format!("{}. **", n + 1)), "{line}");
            assert!(line.contains("** -- "), "{line}");
        }
        let templates: HashSet<&str> = numbered
            .iter()
            .map(|l| l.split(" -- ").nth(1).unwrap())
            .collect();
        assert_eq!(templates.len(), 3, "encounters repeat: {md}");
        let npcs = md
            .split("## NPCs")
            .nth(1)
            .unwrap()
            .split("## Complication")
            .next()
            .unwrap();
        let npc_lines: Vec<&str> = npcs.lines().filter(|l| l.starts_with("- **")).collect();
        assert!((2..=3).contains(&npc_lines.len()), "{md}");
        let npc_names: HashSet<&str> = npc_lines
            .iter()
            .map(|l| l.trim_start_matches("- **").split("** -- ").next().unwrap())
            .collect();
        assert_eq!(npc_names.len(), npc_lines.len(), "NPCs repeat: {md}");
        assert!(!md.contains('{') && !md.contains('}'), "{md}");
        assert!(!md.contains("  "), "double space: {md}");

        let mut seen = HashSet::new();
        for entity in &draft.entities {
            assert!(
                seen.insert(entity.name.as_str()),
                "recorded twice: {}",
                entity.name
            );
            assert!(!entity.name.is_empty());
            assert!(
                md.contains(&entity.name),
                "{} missing from {md}",
                entity.name
            );
            match entity.origin {
                Origin::Table(list) => {
                    let list = List::ALL.into_iter().find(|l| l.key() == list).unwrap();
                    assert!(tables.list(list).contains(&entity.name), "{entity:?}");
                    assert!(list.key().starts_with(&entity.kind), "{entity:?}");
                }
                Origin::Passage(i) => {
                    let plain = strip_bold(&passages[i].text);
                    assert!(
                        grounded_in(&plain, &entity.name),
                        "{entity:?} not in passage {i}"
                    );
                    assert!(
                        passages[i]
                            .entities
                            .iter()
                            .any(|e| e.name == entity.name && e.kind == entity.kind)
                    );
                    assert!(
                        md.contains(&format!("[{}] {}", i + 1, passages[i].title)),
                        "{md}"
                    );
                }
            }
        }
    }

    #[test]
    fn same_seed_same_scenario() {
        let tables = fixture();
        let a = write_scenario(&tables, "the waystone", 7, &lore(), None);
        let b = write_scenario(&tables, "the waystone", 7, &lore(), None);
        assert_eq!(a.markdown, b.markdown);
        assert_eq!(a.entities, b.entities);
        assert_eq!(a.title, b.title);
    }

    #[test]
    fn seeds_vary_the_scenario() {
        let tables = fixture();
        let passages = lore();
        let mut combos = HashSet::new();
        for seed in 0..20 {
            let draft = write_scenario(&tables, "the waystone", seed, &passages, None);
            let hook = draft
                .markdown
                .split("## Hook\n\n")
                .nth(1)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_owned();
            combos.insert((draft.title, hook));
        }
        assert!(
            combos.len() >= 15,
            "only {} distinct title+hook combos",
            combos.len()
        );
    }

    #[test]
    fn layout_and_entity_invariants_hold_for_many_seeds() {
        let tables = fixture();
        let passages = lore();
        for seed in 0..200 {
            let draft = write_scenario(&tables, "the waystone", seed, &passages, None);
            check_invariants(&tables, &passages, &draft);
            let md = &draft.markdown;
            assert!(md.contains(&format!(
                "*Offline scenario · seed {seed} · prompt: \"the waystone\"*"
            )));
            assert!(!md.contains("No lore"), "{md}");
            assert!(!md.contains("Phantom Name"), "{md}");
            let quote = md
                .lines()
                .find(|l| l.starts_with("> From the lore: "))
                .unwrap();
            assert!(
                quote.ends_with("[1]") || quote.ends_with("[2]") || quote.ends_with("[3]"),
                "{quote}"
            );
            assert!(!quote.contains("**"), "{quote}");
            // The quote names the chosen place when the setting has one.
            let setting = md
                .split("## Setting\n\n")
                .nth(1)
                .unwrap()
                .lines()
                .next()
                .unwrap();
            for place in ["the Shattered Waystone", "Emberwick", "the Drowned Abbey"] {
                if setting.contains(place) {
                    assert!(
                        quote.to_lowercase().contains(&place.to_lowercase()),
                        "{setting} / {quote}"
                    );
                }
            }
        }
    }

    #[test]
    fn lore_names_are_preferred_over_fallbacks() {
        let tables = fixture();
        let passages = lore();
        let mut lore_npcs = HashSet::new();
        for seed in 0..50 {
            let draft = write_scenario(&tables, "the waystone", seed, &passages, None);
            for entity in &draft.entities {
                // The lore has three NPCs and three places: no sentence needs
                // more, so no fallback NPC or place is ever used.
                if entity.kind == "npc" || entity.kind == "place" {
                    assert!(
                        matches!(entity.origin, Origin::Passage(_)),
                        "seed {seed}: {entity:?}"
                    );
                    assert!(!tables.has_fallback_name(&entity.name));
                }
                if entity.kind == "npc" {
                    lore_npcs.insert(entity.name.clone());
                }
            }
        }
        for name in ["Warden Ilsa Marrow", "Corvin Hale", "Sister Vey"] {
            assert!(lore_npcs.contains(name), "{name} never used");
        }
    }

    #[test]
    fn no_lore_uses_only_tables() {
        let tables = fixture();
        for seed in 0..30 {
            let reason = "retrieval timed out after 10 s";
            // Passages are ignored when a reason is given.
            let draft = write_scenario(&tables, "a heist", seed, &lore(), Some(reason));
            check_invariants(&tables, &[], &draft);
            let md = &draft.markdown;
            assert!(
                md.contains(&format!(
                    "\"*\n\n> **No lore:** {reason}. This scenario uses only the built-in tables.\n\n## Setting"
                )),
                "{md}"
            );
            assert!(!md.contains("From the lore"), "{md}");
            assert!(
                md.ends_with(&format!("## Sources\n\n_None: {reason}._\n")),
                "{md}"
            );
            assert!(!draft.entities.is_empty());
            for entity in &draft.entities {
                assert!(matches!(entity.origin, Origin::Table(_)), "{entity:?}");
                assert!(tables.has_fallback_name(&entity.name), "{entity:?}");
            }
        }
        let draft = write_scenario(&tables, "a heist", 3, &[], None);
        check_invariants(&tables, &[], &draft);
        assert!(
            draft
                .markdown
                .ends_with("## Sources\n\n_None: no lore matched the prompt._\n")
        );
        assert!(!draft.markdown.contains("No lore"));
    }

    #[test]
    fn sources_list_cited_and_used_passages_only() {
        let tables = fixture();
        let mut passages = lore();
        passages.push(passage(
            "Unrelated",
            "unrelated.md",
            "history",
            "Short.",
            &[],
        ));
        for seed in 0..40 {
            let draft = write_scenario(&tables, "x", seed, &passages, None);
            let sources = draft.markdown.split("## Sources\n\n").nth(1).unwrap();
            assert!(!sources.contains("Unrelated"), "{sources}");
            let mut expected: BTreeSet<usize> = draft
                .entities
                .iter()
                .filter_map(|e| match e.origin {
                    Origin::Passage(i) => Some(i),
                    Origin::Table(_) => None,
                })
                .collect();
            let quote = draft
                .markdown
                .lines()
                .find(|l| l.starts_with("> From the lore: "))
                .unwrap();
            let cited: usize = quote
                .rsplit('[')
                .next()
                .unwrap()
                .trim_end_matches(']')
                .parse()
                .unwrap();
            expected.insert(cited - 1);
            // Grouped by document, citation numbers ascending.
            let mut want: Vec<(String, Vec<usize>)> = Vec::new();
            for index in &expected {
                let p = &passages[*index];
                let line = format!("{} ({})", p.title, p.source);
                match want.iter_mut().find(|(l, _)| *l == line) {
                    Some((_, numbers)) => numbers.push(index + 1),
                    None => want.push((line, vec![index + 1])),
                }
            }
            let want: Vec<String> = want
                .into_iter()
                .map(|(line, numbers)| {
                    let cites: String = numbers.iter().map(|n| format!("[{n}]")).collect();
                    format!("- {cites} {line}")
                })
                .collect();
            let lines: Vec<&str> = sources.lines().collect();
            assert_eq!(lines, want, "{sources}");
        }
    }

    #[test]
    fn articles_are_mended() {
        let mut text = String::from("A swarm of a ");
        push_value(&mut text, "Glasswing Moths", true);
        assert_eq!(text, "A swarm of Glasswing Moths");
        let mut text = String::from("Beneath the ");
        push_value(&mut text, "the Salt Hollows", true);
        assert_eq!(text, "Beneath the Salt Hollows");
        let mut text = String::from("An ");
        push_value(&mut text, "ghoul", true);
        assert_eq!(text, "A ghoul");
        let mut text = String::from("Word of a ");
        push_value(&mut text, "ashen", false);
        assert_eq!(text, "Word of an ashen");
        let mut text = String::from("Banana ");
        push_value(&mut text, "ashen", false);
        assert_eq!(text, "Banana ashen");
    }

    #[test]
    fn works_with_embedded_tables() {
        let tables = Tables::embedded().unwrap();
        let passages = lore();
        let mut combos = HashSet::new();
        for seed in 0..50 {
            let draft = write_scenario(&tables, "the waystone", seed, &passages, None);
            check_invariants(&tables, &passages, &draft);
            if seed < 20 {
                let hook = draft
                    .markdown
                    .split("## Hook\n\n")
                    .nth(1)
                    .unwrap()
                    .lines()
                    .next()
                    .unwrap()
                    .to_owned();
                combos.insert((draft.title.clone(), hook));
            }
            let draft = write_scenario(&tables, "the waystone", seed, &[], Some("breaker open"));
            check_invariants(&tables, &[], &draft);
        }
        assert!(
            combos.len() >= 15,
            "only {} distinct title+hook combos",
            combos.len()
        );
    }
}
