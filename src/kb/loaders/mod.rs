//! File loaders (markdown, text, HTML, PDF): filled in by the next commit.
