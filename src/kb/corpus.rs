//! A synthetic markdown corpus for knowledge-base benchmarks: the same seed
//! always writes the same files, byte for byte, on every machine, so that
//! loreweave's benchmark (`benches/kb.rs`) and a peer's (another retriever
//! pointed at the same folder, with the same [`queries`]) measure the same
//! work.
//!
//! What it writes: markdown files in nested folders (one to three levels), a
//! `# ` title each, sometimes `---` front matter (`kind`, `tags`), `##` and
//! `###` sections, paragraphs of varied length (some hard-wrapped at 80
//! columns, some bullet lists and quotes), built from a vocabulary of about
//! five thousand words drawn with a Zipf-like law (a few words everywhere, a
//! long tail of rare ones), a per-document topic (a handful of words each
//! document repeats, so term frequencies differ from document to document),
//! and proper nouns (people and places, sometimes in bold).
//!
//! Invariants:
//! - Deterministic: the output depends only on the seed and the number of
//!   chunks asked for (its own PRNG, SplitMix64, never an external crate's
//!   generator whose stream could change between versions).
//! - Files are written until the chunks they yield (counted with
//!   [`super::chunk`] over [`super::parse_markdown`], as `kb add` counts
//!   them) reach the target, so the count overshoots by less than one file's
//!   chunks.
//! - [`queries`] draws only words of the vocabulary the same seed builds.
//! - [`generate`] writes only into an empty or absent folder, so the
//!   statistics it returns describe the whole tree.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::{chunk, parse_markdown};

/// The seed of the corpus the benchmarks use.
pub const BENCH_SEED: u64 = 0x10BE_5EED;
/// Chunks in the benchmarks' corpus.
pub const BENCH_CHUNKS: usize = 10_000;
/// Queries the benchmarks run.
pub const BENCH_QUERIES: usize = 200;

/// Content words in the vocabulary (function words and names come on top).
const CONTENT_WORDS: usize = 5_000;
/// People and places.
const PEOPLE: usize = 300;
const PLACES: usize = 200;
/// Content words of rank at least this are "rare" (a few dozen occurrences
/// in the 10,000-chunk corpus).
const RARE_FROM: usize = CONTENT_WORDS / 2;
/// Hard-wrap width of wrapped files.
const WRAP: usize = 80;

/// What [`generate`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorpusStats {
    /// Markdown files.
    pub files: usize,
    /// Folders under the corpus root (the root itself not counted).
    pub dirs: usize,
    /// Bytes of all files.
    pub bytes: u64,
    /// Chunks the files yield, as `kb add` splits them.
    pub chunks: usize,
    /// Whitespace-separated words of all files.
    pub words: u64,
}

/// SplitMix64: tiny, fast, and the same stream everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Sampling ranks `0..n` with weight `1 / (rank + 1)`: Zipf's law with
/// exponent 1, computed with IEEE division and addition only (no `powf`,
/// whose last bits may differ between platforms' maths libraries).
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|rank| {
                total += 1.0 / (rank + 1) as f64;
                total
            })
            .collect();
        Zipf { cumulative }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = rng.unit() * total;
        self.cumulative
            .partition_point(|&c| c <= target)
            .min(self.cumulative.len().saturating_sub(1))
    }
}

/// The most frequent English words, most frequent first.
const FUNCTION_WORDS: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "is", "was", "that", "it", "for", "on", "with", "as",
    "his", "her", "they", "at", "by", "from", "this", "which", "but", "be", "are", "or", "had",
    "not", "were", "an", "their", "one", "all", "there", "she", "he", "when", "who", "into", "its",
    "been", "has", "more", "no", "over", "than", "then", "them", "these", "so", "some", "what",
    "would", "out", "up", "only", "other", "after", "before", "under", "where", "while", "through",
    "each", "most", "many", "still", "never", "always", "again", "even", "because", "though",
    "until", "every", "once", "near", "beyond", "against", "during", "between", "without", "upon",
    "about", "across", "behind", "below", "above", "toward", "whose", "those", "such", "very",
];

/// Real words, separated by spaces, for the most frequent content ranks, so
/// the text reads as a campaign wiki; pseudo-words fill the long tail.
const COMMON_WORDS: &str = "\
    river tower guard ancient road city king queen stone fire water night light shadow gate \
    wall north south east west old new great small dark bright cold warm iron gold silver \
    bronze glass salt oil lamp lantern book map letter oath war peace trade guild temple \
    shrine priest knight soldier merchant sailor ship harbor market bridge ford hill valley \
    forest moor marsh desert mountain pass cave mine ruin tomb crown sword shield spear bow \
    arrow horse wolf raven owl serpent dragon storm rain snow winter summer spring autumn \
    harvest bread wine ale coin debt tax law court council lord lady heir child mother \
    father brother sister friend enemy stranger traveler pilgrim scholar mage witch spirit \
    ghost curse blessing prophecy song tale legend history memory secret rumor treaty border \
    fortress keep village farm field orchard well mill forge smith hunter fisher shepherd \
    flock herd feast festival funeral wedding battle siege raid ambush escape journey voyage \
    search discovery betrayal alliance rebellion exile return hidden broken silent lost \
    sacred cursed wild quiet red black white grey green blue deep high low long short first \
    last early late strange common rare rich poor bitter sweet heavy swift slow guards \
    watches travels speaks carries builds burns breaks holds keeps sells buys hunts \
    remembers forgets fears trusts seeks finds hides rules serves protects betrays sings \
    writes reads walks rides sails crosses";

const ONSETS: &[&str] = &[
    "", "b", "br", "c", "ch", "cl", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "l", "m", "n",
    "p", "pr", "r", "s", "sh", "sk", "st", "t", "th", "tr", "v", "w", "y", "z",
];
const NUCLEI: &[&str] = &[
    "a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou", "ie", "oa", "y",
];
const CODAS: &[&str] = &[
    "", "", "", "n", "r", "l", "s", "th", "nd", "rk", "st", "m", "x", "ld", "ck", "sh",
];
const PLACE_SUFFIXES: &[&str] = &[
    "Reach", "Hold", "Ford", "Vale", "Keep", "Mire", "Crossing", "Spire", "Hollow", "Gate",
];
const KINDS: &[&str] = &["npc", "place", "faction", "item", "event", "lore"];

/// Every word the corpus uses, built from the seed alone.
struct Vocabulary {
    /// Content words, most frequent first.
    content: Vec<String>,
    /// People ("Ilsa Marrow") and places ("Tolvar Reach").
    people: Vec<String>,
    places: Vec<String>,
    content_law: Zipf,
    function_law: Zipf,
    name_law: Zipf,
}

/// Open syllables, then one closing consonant group: "tolvar", "mirenth".
fn pseudo_word(rng: &mut Rng, syllables: usize) -> String {
    let mut word = String::new();
    for _ in 0..syllables {
        word.push_str(ONSETS[rng.below(ONSETS.len())]);
        word.push_str(NUCLEI[rng.below(NUCLEI.len())]);
    }
    word.push_str(CODAS[rng.below(CODAS.len())]);
    word
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Vocabulary {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x766F_6361_6275_6C61);
        let mut taken: HashSet<String> = FUNCTION_WORDS.iter().map(|w| (*w).to_owned()).collect();
        let mut common: Vec<&str> = COMMON_WORDS.split_whitespace().collect();
        // The same real words, in a seed-dependent order of frequency.
        for i in (1..common.len()).rev() {
            common.swap(i, rng.below(i + 1));
        }
        let mut content: Vec<String> = Vec::with_capacity(CONTENT_WORDS);
        for word in common {
            if taken.insert(word.to_owned()) {
                content.push(word.to_owned());
            }
        }
        // Frequent words are short, rare ones long.
        while content.len() < CONTENT_WORDS {
            let syllables = match content.len() {
                n if n < 800 => rng.range(1, 2),
                n if n < 3000 => 2,
                _ => rng.range(2, 3),
            };
            let word = pseudo_word(&mut rng, syllables);
            if word.len() >= 3 && taken.insert(word.clone()) {
                content.push(word);
            }
        }
        let mut name = |rng: &mut Rng, syllables: usize| loop {
            let word = pseudo_word(rng, syllables);
            if word.len() >= 3 && taken.insert(word.clone()) {
                return capitalised(&word);
            }
        };
        let people = (0..PEOPLE)
            .map(|_| {
                let first = name(&mut rng, 2);
                let syllables = rng.range(2, 3);
                let last = name(&mut rng, syllables);
                format!("{first} {last}")
            })
            .collect();
        let places = (0..PLACES)
            .map(|_| {
                let base = name(&mut rng, 2);
                if rng.chance(0.5) {
                    format!("{base} {}", rng.pick(PLACE_SUFFIXES))
                } else {
                    base
                }
            })
            .collect();
        Vocabulary {
            content,
            people,
            places,
            content_law: Zipf::new(CONTENT_WORDS),
            function_law: Zipf::new(FUNCTION_WORDS.len()),
            name_law: Zipf::new(PEOPLE.min(PLACES)),
        }
    }

    fn content_word(&self, rng: &mut Rng) -> &str {
        &self.content[self.content_law.sample(rng)]
    }

    fn function_word(&self, rng: &mut Rng) -> &'static str {
        FUNCTION_WORDS[self.function_law.sample(rng)]
    }

    fn proper_noun(&self, rng: &mut Rng) -> &str {
        let rank = self.name_law.sample(rng);
        if rng.chance(0.6) {
            &self.people[rank]
        } else {
            &self.places[rank]
        }
    }
}

/// What one document is about.
struct Topic<'a> {
    subject: &'a str,
    words: Vec<&'a str>,
}

/// Writes one file's markdown.
struct Page<'a> {
    vocab: &'a Vocabulary,
    topic: Topic<'a>,
    out: String,
    wrap: bool,
}

impl Page<'_> {
    fn sentence(&self, rng: &mut Rng, min: usize, max: usize, end: bool) -> String {
        let n = rng.range(min, max);
        let mut words: Vec<String> = Vec::with_capacity(n + 2);
        while words.len() < n {
            let roll = rng.unit();
            let word = if roll < 0.40 {
                self.vocab.function_word(rng).to_owned()
            } else if roll < 0.43 {
                let name = if rng.chance(0.5) {
                    self.topic.subject
                } else {
                    self.vocab.proper_noun(rng)
                };
                if rng.chance(0.3) {
                    format!("**{name}**")
                } else {
                    name.to_owned()
                }
            } else if roll < 0.55 {
                (*rng.pick(&self.topic.words)).to_owned()
            } else {
                self.vocab.content_word(rng).to_owned()
            };
            words.push(word);
        }
        if let Some(first) = words.first_mut() {
            *first = capitalised(first);
        }
        let mut text = String::new();
        for (i, word) in words.iter().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(word);
            if i + 1 < words.len() && rng.chance(0.07) {
                text.push(',');
            }
        }
        if end {
            text.push(if rng.chance(0.05) { '?' } else { '.' });
        }
        text
    }

    fn heading_words(&self, rng: &mut Rng) -> String {
        let n = rng.range(1, 3);
        let words: Vec<String> = (0..n)
            .map(|i| {
                let word = if i == 0 && rng.chance(0.3) {
                    (*rng.pick(&self.topic.words)).to_owned()
                } else {
                    self.vocab.content_word(rng).to_owned()
                };
                capitalised(&word)
            })
            .collect();
        words.join(" ")
    }

    fn push_wrapped(&mut self, text: &str, prefix: &str) {
        if !self.wrap {
            self.out.push_str(prefix);
            self.out.push_str(text);
            self.out.push('\n');
            return;
        }
        let mut line = String::from(prefix);
        for word in text.split(' ') {
            if line.len() > prefix.len() && line.len() + 1 + word.len() > WRAP {
                self.out.push_str(&line);
                self.out.push('\n');
                line.clear();
                line.push_str(prefix);
            } else if line.len() > prefix.len() {
                line.push(' ');
            }
            line.push_str(word);
        }
        self.out.push_str(&line);
        self.out.push('\n');
    }

    fn paragraph(&mut self, rng: &mut Rng) {
        let roll = rng.unit();
        if roll < 0.10 {
            for _ in 0..rng.range(3, 6) {
                let item = self.sentence(rng, 3, 12, false);
                self.out.push_str("- ");
                self.out.push_str(&item);
                self.out.push('\n');
            }
        } else if roll < 0.13 {
            let quote = self.sentence(rng, 8, 20, true);
            self.push_wrapped(&quote, "> ");
        } else {
            let sentences = match rng.below(10) {
                0..=1 => rng.range(1, 3),
                2..=6 => rng.range(3, 7),
                _ => rng.range(7, 14),
            };
            let text: Vec<String> = (0..sentences)
                .map(|_| self.sentence(rng, 5, 22, true))
                .collect();
            self.push_wrapped(&text.join(" "), "");
        }
        self.out.push('\n');
    }

    fn document(&mut self, rng: &mut Rng, title: &str, kind: &str) {
        if rng.chance(0.35) {
            let tags: Vec<&str> = (0..rng.range(1, 3))
                .map(|_| *rng.pick(&self.topic.words))
                .collect();
            let _ = writeln!(
                self.out,
                "---\nkind: {kind}\ntags: [{}]\n---",
                tags.join(", ")
            );
        }
        let _ = writeln!(self.out, "# {title}\n");
        for _ in 0..rng.range(1, 3) {
            self.paragraph(rng);
        }
        for _ in 0..rng.range(1, 4) {
            let heading = self.heading_words(rng);
            let _ = writeln!(self.out, "## {heading}\n");
            for _ in 0..rng.range(1, 4) {
                self.paragraph(rng);
            }
            if rng.chance(0.25) {
                for _ in 0..rng.range(1, 2) {
                    let heading = self.heading_words(rng);
                    let _ = writeln!(self.out, "### {heading}\n");
                    for _ in 0..rng.range(1, 3) {
                        self.paragraph(rng);
                    }
                }
            }
        }
        // One trailing newline.
        while self.out.ends_with("\n\n") {
            self.out.pop();
        }
    }
}

/// File-name form of a title: lowercase words joined with `-`.
fn slug(title: &str) -> String {
    title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join("-")
}

/// The folders files go into, relative to the root: one to three levels.
fn folders(vocab: &Vocabulary, rng: &mut Rng) -> Vec<String> {
    let mut leaves = Vec::new();
    let mut used = HashSet::new();
    let mut fresh = |rng: &mut Rng| loop {
        let word = vocab.content[rng.below(600)].clone();
        if used.insert(word.clone()) {
            return word;
        }
    };
    for _ in 0..8 {
        let top = fresh(rng);
        leaves.push(top.clone());
        for _ in 0..rng.range(3, 8) {
            let mid = format!("{top}/{}", fresh(rng));
            leaves.push(mid.clone());
            if rng.chance(0.4) {
                for _ in 0..rng.range(2, 4) {
                    leaves.push(format!("{mid}/{}", fresh(rng)));
                }
            }
        }
    }
    leaves
}

/// Write the corpus of `seed` into `dir` (created if absent; it must be
/// empty): files until they yield at least `target_chunks` chunks.
pub fn generate(dir: &Path, seed: u64, target_chunks: usize) -> io::Result<CorpusStats> {
    std::fs::create_dir_all(dir)?;
    if std::fs::read_dir(dir)?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not empty", dir.display()),
        ));
    }
    let vocab = Vocabulary::new(seed);
    let mut rng = Rng::new(seed);
    let leaves = folders(&vocab, &mut rng);
    let mut created: HashSet<String> = HashSet::new();
    let mut stats = CorpusStats::default();
    let mut chunks = 0usize;
    while chunks < target_chunks {
        let number = stats.files;
        // Every document has a subject: a person, a place, or a theme.
        let (title, kind, subject) = match rng.below(10) {
            0..=3 => {
                let person = vocab.people[rng.below(PEOPLE)].as_str();
                (person.to_owned(), "npc", person)
            }
            4..=6 => {
                let place = vocab.places[rng.below(PLACES)].as_str();
                let title = if rng.chance(0.3) {
                    format!(
                        "The {} of {place}",
                        capitalised(vocab.content_word(&mut rng))
                    )
                } else {
                    place.to_owned()
                };
                (title, "place", place)
            }
            _ => {
                let theme = capitalised(vocab.content_word(&mut rng));
                let other = vocab.content_word(&mut rng);
                let subject = vocab.proper_noun(&mut rng);
                (format!("{theme} and {other}"), *rng.pick(KINDS), subject)
            }
        };
        let words = (0..rng.range(4, 10))
            .map(|_| vocab.content[rng.range(20, CONTENT_WORDS - 1)].as_str())
            .collect();
        let mut page = Page {
            vocab: &vocab,
            topic: Topic { subject, words },
            out: String::new(),
            wrap: rng.chance(0.5),
        };
        page.document(&mut rng, &title, kind);
        let text = page.out;

        let folder = rng.pick(&leaves).as_str();
        let rel = format!("{folder}/{}-{number:04}.md", slug(&title));
        if created.insert(folder.to_owned()) {
            std::fs::create_dir_all(dir.join(folder))?;
        }
        std::fs::write(dir.join(&rel), &text)?;

        let doc = parse_markdown(&rel, &text);
        chunks += chunk(&doc).len();
        stats.files += 1;
        stats.bytes += text.len() as u64;
        stats.words += text.split_whitespace().count() as u64;
    }
    stats.chunks = chunks;
    // Every used folder and the folders above it.
    let mut dirs: HashSet<&str> = HashSet::new();
    for folder in &created {
        for (at, _) in folder.match_indices('/') {
            dirs.insert(&folder[..at]);
        }
        dirs.insert(folder);
    }
    stats.dirs = dirs.len();
    Ok(stats)
}

/// `n` search queries over the corpus of `seed`: two to four words of its
/// vocabulary, mostly content words of every frequency; about a quarter hold
/// a rare word, some a name, some a common function word ("the").
pub fn queries(seed: u64, n: usize) -> Vec<String> {
    let vocab = Vocabulary::new(seed);
    let mut rng = Rng::new(seed ^ 0x7175_6572_6965_7321);
    (0..n)
        .map(|_| {
            let len = rng.range(2, 4);
            let mut words: Vec<String> = Vec::with_capacity(len);
            let push = |words: &mut Vec<String>, word: String| {
                if !words.contains(&word) {
                    words.push(word);
                }
            };
            if rng.chance(0.25) {
                let rare = vocab.content[rng.range(RARE_FROM, CONTENT_WORDS - 1)].clone();
                push(&mut words, rare);
            }
            if rng.chance(0.15) {
                push(&mut words, vocab.proper_noun(&mut rng).to_lowercase());
            }
            if rng.chance(0.3) {
                push(&mut words, vocab.function_word(&mut rng).to_owned());
            }
            while words.len() < len {
                // Skip the very top ranks, as a searcher rarely types them.
                let word = loop {
                    let rank = vocab.content_law.sample(&mut rng);
                    if rank >= 10 {
                        break vocab.content[rank].clone();
                    }
                };
                push(&mut words, word);
            }
            // Names may bring two words: keep the query within four.
            let mut query: Vec<&str> = words.iter().flat_map(|w| w.split(' ')).collect();
            query.truncate(4);
            for i in (1..query.len()).rev() {
                query.swap(i, rng.below(i + 1));
            }
            query.join(" ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn files(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(at) = stack.pop() {
            for entry in std::fs::read_dir(&at).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(dir)
                        .expect("under the root")
                        .to_string_lossy()
                        .into_owned();
                    let text = std::fs::read_to_string(&path).expect("read");
                    out.push((rel, text));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn same_seed_same_files_and_another_seed_others() {
        let tmp = tempfile::tempdir().expect("tmp");
        let a = generate(&tmp.path().join("a"), 7, 300).expect("a");
        let b = generate(&tmp.path().join("b"), 7, 300).expect("b");
        let c = generate(&tmp.path().join("c"), 8, 300).expect("c");
        assert_eq!(a, b);
        let (fa, fb, fc) = (
            files(&tmp.path().join("a")),
            files(&tmp.path().join("b")),
            files(&tmp.path().join("c")),
        );
        assert_eq!(fa, fb);
        assert_ne!(fa, fc);
        assert_eq!(fa.len(), a.files);
        assert_eq!(fc.len(), c.files);
    }

    #[test]
    fn chunk_count_is_the_one_asked_for_as_kb_add_counts_it() {
        let tmp = tempfile::tempdir().expect("tmp");
        let target = 600;
        let stats = generate(tmp.path(), BENCH_SEED, target).expect("generate");
        let all = files(tmp.path());
        let mut chunks = 0;
        let mut most_in_one_file = 0;
        let mut bytes = 0;
        let mut deepest = 0;
        let mut titled = 0;
        let mut with_front_matter = 0;
        let mut with_subsections = 0;
        for (rel, text) in &all {
            let doc = parse_markdown(rel, text);
            let n = chunk(&doc).len();
            assert!(n > 0, "{rel} yields no chunk");
            chunks += n;
            most_in_one_file = most_in_one_file.max(n);
            bytes += text.len() as u64;
            deepest = deepest.max(rel.matches('/').count());
            titled += usize::from(text.lines().any(|l| l.starts_with("# ")));
            with_front_matter += usize::from(doc.kind.is_some());
            with_subsections += usize::from(text.contains("\n### "));
            assert!(rel.ends_with(".md"), "{rel}");
        }
        assert_eq!(stats.chunks, chunks);
        assert_eq!(stats.bytes, bytes);
        assert_eq!(stats.files, all.len());
        assert!(chunks >= target, "{chunks} < {target}");
        assert!(chunks < target + most_in_one_file, "{chunks} overshoots");
        assert_eq!(deepest, 3, "files lie one to three folders deep");
        assert_eq!(titled, all.len());
        assert!(with_front_matter > 0 && with_front_matter < all.len());
        assert!(with_subsections > 0);
        // A second run into the same folder is refused.
        assert!(generate(tmp.path(), BENCH_SEED, 10).is_err());
    }

    #[test]
    fn word_frequencies_follow_a_long_tail() {
        let tmp = tempfile::tempdir().expect("tmp");
        generate(tmp.path(), 3, 400).expect("generate");
        let vocab = Vocabulary::new(3);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (_, text) in files(tmp.path()) {
            for word in text.split(|c: char| !c.is_alphanumeric()) {
                if !word.is_empty() {
                    *counts.entry(word.to_lowercase()).or_insert(0) += 1;
                }
            }
        }
        let count = |rank: usize| counts.get(&vocab.content[rank]).copied().unwrap_or(0);
        let top: usize = (0..10).map(count).sum();
        let middle: usize = (1000..1010).map(count).sum();
        let tail: usize = (4990..5000).map(count).sum();
        assert!(top > 10 * middle.max(1), "top {top}, middle {middle}");
        assert!(middle >= tail, "middle {middle}, tail {tail}");
        assert!(counts["the"] > count(0), "function words come first");
    }

    #[test]
    fn queries_are_deterministic_short_and_from_the_vocabulary() {
        let q = queries(BENCH_SEED, BENCH_QUERIES);
        assert_eq!(q, queries(BENCH_SEED, BENCH_QUERIES));
        assert_ne!(q, queries(BENCH_SEED + 1, BENCH_QUERIES));
        assert_eq!(q.len(), BENCH_QUERIES);
        let vocab = Vocabulary::new(BENCH_SEED);
        let mut known: HashSet<String> = vocab.content.iter().cloned().collect();
        known.extend(FUNCTION_WORDS.iter().map(|w| (*w).to_owned()));
        for name in vocab.people.iter().chain(&vocab.places) {
            known.extend(name.split(' ').map(str::to_lowercase));
        }
        let rare: HashSet<&str> = vocab.content[RARE_FROM..]
            .iter()
            .map(String::as_str)
            .collect();
        let mut with_rare = 0;
        for query in &q {
            let words: Vec<&str> = query.split(' ').collect();
            assert!((2..=4).contains(&words.len()), "{query}");
            for word in &words {
                assert!(known.contains(*word), "{word} of '{query}'");
            }
            with_rare += usize::from(words.iter().any(|w| rare.contains(w)));
        }
        assert!(
            (30..=90).contains(&with_rare),
            "{with_rare} with a rare word"
        );
    }
}
