//! File loaders end to end: fixture documents of every format with exact
//! chunk trails and line ranges, PDFs extracted through the real
//! `loreweave __extract-pdf` child process, and a corpus of bad inputs that
//! must each give the expected `Skip` (never a panic, a hang or an abort).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use loreweave::kb::loaders::{Format, LoadOptions, Skip, format_for_path, load_bytes, load_file};
use loreweave::kb::{Chunk, Document, chunk};
use pdf_extract::{Dictionary, Object, Stream};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kb")
        .join(name)
}

/// Options that run this package's binary as the PDF extractor.
fn real_extractor() -> LoadOptions {
    LoadOptions {
        extractor: Some(PathBuf::from(env!("CARGO_BIN_EXE_loreweave"))),
        ..LoadOptions::default()
    }
}

fn load(path: &Path, opts: &LoadOptions) -> Result<Document, Skip> {
    load_file(path, &path.display().to_string(), opts).map(|(doc, _)| doc)
}

/// (trail, lines, text) of every chunk.
fn located(chunks: &[Chunk]) -> Vec<(Vec<String>, (usize, usize), String)> {
    chunks
        .iter()
        .map(|c| (c.trail.clone(), c.lines, c.text.clone()))
        .collect()
}

fn trail(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn markdown_fixture_has_exact_trails_and_lines() {
    let path = fixture("lore.md");
    let (doc, bytes) = load_file(&path, "lore.md", &LoadOptions::default()).expect("load");
    assert_eq!(bytes, fs::read(&path).expect("read"));
    assert_eq!(doc.title, "The Grey Moor");
    assert_eq!(doc.kind.as_deref(), Some("place"));
    assert_eq!(doc.tags, ["moor", "fog"]);
    assert_eq!(doc.body_line, 8);
    let chunks = chunk(&doc);
    assert_eq!(
        located(&chunks),
        [
            (trail(&[]), (8, 8), "A wide moor under **fog**.".to_owned()),
            (
                trail(&["History"]),
                (12, 12),
                "The moor was a sea.".to_owned()
            ),
            (
                trail(&["History", "The Drowning"]),
                (16, 20),
                "Water rose.\n\n```sh\n# a shell comment, not a heading\n```".to_owned()
            ),
            (
                trail(&["Appendix", "Sources"]),
                (26, 26),
                "Old maps.".to_owned()
            ),
        ]
    );
    assert_eq!(chunks[2].heading.as_deref(), Some("The Drowning"));
    assert_eq!(chunks[3].id, "lore.md#3");
}

#[test]
fn text_fixture_has_no_headings() {
    let doc = load(&fixture("notes.txt"), &LoadOptions::default()).expect("load");
    assert_eq!(doc.title, "Travel Notes");
    assert_eq!(doc.body_line, 1);
    let chunks = chunk(&doc);
    assert_eq!(
        located(&chunks),
        [(
            trail(&[]),
            (1, 8),
            "Travel Notes\n\nThe river roads flood in spring.\nCarry lamp oil.\n\n\
             \\# not a heading in text\n\nLast line."
                .to_owned()
        )]
    );
}

#[test]
fn html_fixture_drops_scripts_and_keeps_headings() {
    let doc = load(&fixture("page.html"), &LoadOptions::default()).expect("load");
    assert_eq!(doc.title, "Lantern Guild");
    let chunks = chunk(&doc);
    for c in &chunks {
        for marker in [
            "SCRIPT_OR_STYLE_MARKER",
            "FOOTER_MARKER",
            "Home",
            "<",
            "&amp;",
        ] {
            assert!(!c.text.contains(marker), "{marker} in {c:?}");
        }
    }
    // The `<h1>` opening the content is the title line: not in the body.
    let body: Vec<&str> = doc.body.lines().collect();
    assert_eq!(body.first(), Some(&"Merchants of light & oil."));
    let got: Vec<_> = located(&chunks)
        .into_iter()
        .map(|(trail, lines, text)| {
            // Lines count the extracted text; the body starts at body_line.
            let span = body[lines.0 - doc.body_line..=lines.1 - doc.body_line].join("\n");
            assert_eq!(span, text);
            (trail, text)
        })
        .collect();
    assert_eq!(
        got,
        [
            (trail(&[]), "Merchants of light & oil.".to_owned()),
            (
                trail(&["Trade"]),
                "They sell lamp oil along the river roads.".to_owned()
            ),
            (
                trail(&["Trade", "Prices"]),
                "Three coins a flask.".to_owned()
            ),
            (
                trail(&["Members"]),
                "- Ada the Bright\n- Bram of the Ford".to_owned()
            ),
        ]
    );
}

/// A PDF with one line of Helvetica text per page.
fn make_pdf(pages: &[&str]) -> Vec<u8> {
    let mut doc = pdf_extract::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Subtype", Object::Name(b"Type1".to_vec()));
    font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
    font.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
    let font_id = doc.add_object(font);
    let mut fonts = Dictionary::new();
    fonts.set("F1", Object::Reference(font_id));
    let mut resources = Dictionary::new();
    resources.set("Font", Object::Dictionary(fonts));
    let resources_id = doc.add_object(resources);
    let mut kids = Vec::new();
    for text in pages {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)");
        let content = format!("BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET");
        let content_id = doc.add_object(Stream::new(Dictionary::new(), content.into_bytes()));
        let mut page = Dictionary::new();
        page.set("Type", Object::Name(b"Page".to_vec()));
        page.set("Parent", Object::Reference(pages_id));
        page.set("Contents", Object::Reference(content_id));
        kids.push(Object::Reference(doc.add_object(page)));
    }
    let mut tree = Dictionary::new();
    tree.set("Type", Object::Name(b"Pages".to_vec()));
    tree.set("Count", Object::Integer(kids.len() as i64));
    tree.set("Kids", Object::Array(kids));
    tree.set("Resources", Object::Reference(resources_id));
    tree.set(
        "MediaBox",
        Object::Array(vec![0.into(), 0.into(), 612.into(), 792.into()]),
    );
    doc.objects.insert(pages_id, Object::Dictionary(tree));
    let mut catalog = Dictionary::new();
    catalog.set("Type", Object::Name(b"Catalog".to_vec()));
    catalog.set("Pages", Object::Reference(pages_id));
    let catalog_id = doc.add_object(catalog);
    doc.trailer.set("Root", Object::Reference(catalog_id));
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("write the PDF");
    out
}

#[test]
fn pdf_is_extracted_by_the_child_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Guild Report.PDF");
    let pdf = make_pdf(&[
        "The Lantern Guild sells lamp oil.",
        "",
        "# Ledger of the (second) page",
    ]);
    fs::write(&path, &pdf).expect("write");
    let (doc, bytes) = load_file(&path, "kb://report", &real_extractor()).expect("load");
    assert_eq!(bytes, pdf);
    assert_eq!(doc.source, "kb://report");
    assert_eq!(doc.body_line, 1);
    let chunks = chunk(&doc);
    let body: Vec<&str> = doc.body.lines().collect();
    let got: Vec<_> = chunks
        .iter()
        .map(|c| {
            let span = body[c.lines.0 - 1..c.lines.1].join("\n");
            assert_eq!(span.trim(), c.text, "{c:?}");
            (c.trail.clone(), c.text.trim().to_owned())
        })
        .collect();
    // The empty page 2 has no section; text that reads as a heading is
    // escaped.
    assert_eq!(
        got,
        [
            (
                trail(&["Page 1"]),
                "The Lantern Guild sells lamp oil.".to_owned()
            ),
            (
                trail(&["Page 3"]),
                "\\# Ledger of the (second) page".to_owned()
            ),
        ],
        "{:?}",
        doc.body
    );

    // The same through load_bytes (a fetched PDF); the title is the stem.
    let doc = load_bytes(
        "https://example.org/files/report.pdf",
        Format::Pdf,
        &pdf,
        &real_extractor(),
    )
    .expect("load bytes");
    assert_eq!(doc.title, "report");
    assert!(doc.body.contains("sells lamp oil"));
}

#[test]
fn extractor_subcommand_runs_directly_and_is_hidden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("two.pdf");
    fs::write(&path, make_pdf(&["first words", "second words"])).expect("write");
    let exe = env!("CARGO_BIN_EXE_loreweave");
    let out = Command::new(exe)
        .arg("__extract-pdf")
        .arg(&path)
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let text = text
        .strip_prefix("%loreweave-pdf-text 1\n")
        .expect("header line");
    let pages: Vec<&str> = text.split('\x0c').map(str::trim).collect();
    assert_eq!(pages, ["first words", "second words"]);

    let out = Command::new(exe)
        .args(["__extract-pdf", "/nonexistent/x.pdf"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("cannot read /nonexistent/x.pdf"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let help = Command::new(exe).arg("--help").output().expect("run");
    assert!(!String::from_utf8_lossy(&help.stdout).contains("extract-pdf"));
}

/// Runs a load whose extractor is a script written just before: a
/// concurrent fork elsewhere in this test binary can briefly hold the
/// script's write handle, making exec fail with "text file busy".
fn load_with_script(bytes: &[u8], opts: &LoadOptions) -> Result<Document, Skip> {
    let mut result = load_bytes("x.pdf", Format::Pdf, bytes, opts);
    for _ in 0..10 {
        match &result {
            Err(Skip::ParserFailure(why)) if why.contains("busy") => {
                std::thread::sleep(Duration::from_millis(50));
                result = load_bytes("x.pdf", Format::Pdf, bytes, opts);
            }
            _ => break,
        }
    }
    result
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn failing_extractors_are_parser_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hang = script(dir.path(), "hang.sh", "exec sleep 60");
    let crash = script(
        dir.path(),
        "crash.sh",
        "echo 'first line' >&2\necho boom >&2\nexit 3",
    );
    let killed = script(dir.path(), "killed.sh", "kill -9 $$");
    let quiet = script(dir.path(), "quiet.sh", "exit 4");
    let pdf = make_pdf(&["text"]);

    let opts = LoadOptions {
        extractor: Some(hang),
        pdf_timeout: Duration::from_millis(300),
        ..LoadOptions::default()
    };
    assert_eq!(
        load_with_script(&pdf, &opts),
        Err(Skip::ParserFailure("timed out after 0.3 s".into()))
    );

    let opts = LoadOptions {
        extractor: Some(crash),
        ..LoadOptions::default()
    };
    assert_eq!(
        load_with_script(&pdf, &opts),
        Err(Skip::ParserFailure("boom (exit status 3)".into()))
    );

    let opts = LoadOptions {
        extractor: Some(killed),
        ..LoadOptions::default()
    };
    assert_eq!(
        load_with_script(&pdf, &opts),
        Err(Skip::ParserFailure(
            "PDF extractor killed by signal 9".into()
        ))
    );

    let opts = LoadOptions {
        extractor: Some(quiet),
        ..LoadOptions::default()
    };
    let skip = load_with_script(&pdf, &opts).expect_err("must fail");
    assert_eq!(
        skip.to_string(),
        "parser failure: PDF extractor exit status 4"
    );

    // A program that succeeds without the extractor's header line is not
    // trusted (e.g. `current_exe` of a test binary).
    let impostor = script(
        dir.path(),
        "impostor.sh",
        "cat >/dev/null\necho 'some text'",
    );
    let opts = LoadOptions {
        extractor: Some(impostor.clone()),
        ..LoadOptions::default()
    };
    assert_eq!(
        load_with_script(&pdf, &opts),
        Err(Skip::ParserFailure(format!(
            "{} is not a loreweave PDF extractor (unexpected output)",
            impostor.display()
        )))
    );
}

#[test]
fn broken_pdfs_fail_in_the_child_not_here() {
    let opts = real_extractor();
    // A PDF header followed by garbage: the real parser fails and says why.
    let garbage = b"%PDF-1.7\n\x00\xff not really a pdf \n%%EOF\n";
    let skip = load_bytes("bad.pdf", Format::Pdf, garbage, &opts).expect_err("must fail");
    let Skip::ParserFailure(why) = &skip else {
        panic!("{skip:?}")
    };
    assert!(
        why.starts_with("PDF: ") && why.ends_with("(exit status 1)"),
        "{why}"
    );
    // A good PDF truncated halfway.
    let pdf = make_pdf(&["some text here"]);
    let half = &pdf[..pdf.len() / 2];
    let got = load_bytes("half.pdf", Format::Pdf, half, &opts);
    assert!(
        matches!(&got, Err(Skip::ParserFailure(_)) | Ok(_)),
        "{got:?}"
    );
    // No %PDF- header at all: refused before spawning anything.
    assert_eq!(
        load_bytes("x.pdf", Format::Pdf, b"GIF89a....", &opts),
        Err(Skip::ParserFailure("not a PDF (no %PDF- header)".into()))
    );
}

#[test]
fn extractor_memory_cap_is_enforced() {
    let opts = LoadOptions {
        pdf_memory: 1 << 20,
        ..real_extractor()
    };
    // Enough pages that parsing needs more than the heap the child
    // already has mapped (a tiny PDF may fit in it, whatever the cap).
    let page = "text ".repeat(400);
    let pages: Vec<&str> = std::iter::repeat_n(page.as_str(), 400).collect();
    let skip = load_bytes("m.pdf", Format::Pdf, &make_pdf(&pages), &opts)
        .expect_err("1 MiB of address space cannot run the extractor");
    let Skip::ParserFailure(why) = &skip else {
        panic!("{skip:?}")
    };
    // The allocator aborts (SIGABRT) or the runtime fails to start.
    assert!(
        why.contains("signal") || why.contains("memory") || why.contains("exit status"),
        "{why}"
    );
}

#[test]
fn bad_inputs_give_the_expected_skip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let opts = LoadOptions::default();

    // A binary named .md.
    fs::write(d.join("binary.md"), b"\x7fELF\x02\x01\x01\0\0\0\0rest").expect("write");
    assert_eq!(load(&d.join("binary.md"), &opts), Err(Skip::Binary));
    // Invalid UTF-8 text and markdown.
    fs::write(d.join("latin1.txt"), b"caf\xe9 au lait").expect("write");
    assert_eq!(
        load(&d.join("latin1.txt"), &opts),
        Err(Skip::InvalidEncoding)
    );
    fs::write(d.join("latin1.md"), b"# Caf\xe9").expect("write");
    assert_eq!(
        load(&d.join("latin1.md"), &opts),
        Err(Skip::InvalidEncoding)
    );

    // An over-size file (sparse: no disk used) is refused from metadata.
    let big = d.join("huge.md");
    fs::File::create(&big)
        .and_then(|f| f.set_len(200_000_000))
        .expect("sparse file");
    let skip = load(&big, &opts).expect_err("too large");
    assert_eq!(
        skip,
        Skip::TooLarge {
            size: 200_000_000,
            max: 50_000_000
        }
    );
    assert_eq!(skip.to_string(), "too large (200.0 MB > 50.0 MB)");
    // load_bytes checks the size too.
    let small = LoadOptions {
        max_file_size: 4,
        ..LoadOptions::default()
    };
    assert_eq!(
        load_bytes("x.txt", Format::Text, b"12345", &small),
        Err(Skip::TooLarge { size: 5, max: 4 })
    );

    // Empty files are empty documents, not errors.
    for name in ["empty.md", "empty.txt", "empty.html"] {
        fs::write(d.join(name), b"").expect("write");
        let doc = load(&d.join(name), &opts).expect(name);
        assert_eq!((doc.title.as_str(), doc.body.as_str()), ("empty", ""));
        assert!(chunk(&doc).is_empty());
    }
    // An empty or garbage .pdf is not a PDF.
    fs::write(d.join("empty.pdf"), b"").expect("write");
    assert!(matches!(
        load(&d.join("empty.pdf"), &opts),
        Err(Skip::ParserFailure(_))
    ));
    fs::write(d.join("garbage.pdf"), b"\x89PNG\r\n\x1a\n garbage").expect("write");
    assert_eq!(
        load(&d.join("garbage.pdf"), &opts),
        Err(Skip::ParserFailure("not a PDF (no %PDF- header)".into()))
    );

    // HTML made only of scripts: an empty document.
    let scripts = "<html><head><script>var a = 'SCRIPT_MARKER';</script></head><body>\
                   <script src=x.js></script><script>alert('SCRIPT_MARKER')</script>\
                   <style>body{}</style></body></html>";
    fs::write(d.join("scripts.html"), scripts).expect("write");
    let doc = load(&d.join("scripts.html"), &opts).expect("load");
    assert_eq!(doc.body, "");
    assert!(chunk(&doc).is_empty());

    // Unsupported types.
    fs::write(d.join("data.xyz"), b"x").expect("write");
    assert_eq!(
        load(&d.join("data.xyz"), &opts),
        Err(Skip::Unsupported("xyz".into()))
    );
    fs::write(d.join("Makefile"), b"all:").expect("write");
    let skip = load(&d.join("Makefile"), &opts).expect_err("unsupported");
    assert_eq!(skip.to_string(), "unsupported type (no extension)");

    // A directory, a missing file and a dangling symlink are unreadable.
    fs::create_dir(d.join("folder.md")).expect("mkdir");
    assert_eq!(
        load(&d.join("folder.md"), &opts),
        Err(Skip::Unreadable("is a directory".into()))
    );
    assert_eq!(
        load(&d.join("missing.md"), &opts),
        Err(Skip::Unreadable("not found".into()))
    );
    std::os::unix::fs::symlink(d.join("gone.md"), d.join("dangling.md")).expect("symlink");
    assert_eq!(
        load(&d.join("dangling.md"), &opts),
        Err(Skip::Unreadable("broken symlink".into()))
    );
    // A symlink to a good file loads.
    std::os::unix::fs::symlink(fixture("lore.md"), d.join("link.md")).expect("symlink");
    assert_eq!(
        load(&d.join("link.md"), &opts).expect("load").title,
        "The Grey Moor"
    );

    // A FIFO is never opened (opening one would block).
    let fifo = d.join("pipe.md");
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        assert_eq!(
            load(&fifo, &opts),
            Err(Skip::Unreadable("not a regular file".into()))
        );
    } else {
        eprintln!("note: mkfifo unavailable; FIFO case not checked");
    }

    // Permission denied (root reads anything: then only a note).
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = d.join("locked.md");
        fs::write(&locked, b"# Secret").expect("write");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod");
        if fs::read(&locked).is_ok() {
            eprintln!("note: running as root; permission-denied case not checked");
        } else {
            assert_eq!(
                load(&locked, &opts),
                Err(Skip::Unreadable("permission denied".into()))
            );
        }
    }
}

#[test]
fn every_fixture_has_a_format() {
    for name in ["lore.md", "notes.txt", "page.html"] {
        assert!(format_for_path(&fixture(name)).is_some(), "{name}");
    }
}
