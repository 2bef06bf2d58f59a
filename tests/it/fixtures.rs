//! Every recording under fixtures/ is read by some test: one nobody reads
//! documents a behaviour nothing checks, and goes stale unseen.

use std::fs;
use std::path::{Path, PathBuf};

/// Files under fixtures/ that no test needs to read: the index, and the
/// source of the program that recorded freerdp/winpr3-csv-parse.txt.
const NOT_READ: &[&str] = &["README.md", "freerdp/winpr3-csv-probe.c"];

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The text of every file under `dirs` (of the crate) but this one.
fn text_of(dirs: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in dirs {
        files_under(&root.join(d), &mut files);
    }
    files
        .iter()
        .filter(|f| !f.ends_with("tests/it/fixtures.rs"))
        .filter_map(|f| fs::read_to_string(f).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

/// How code names a recording `rel` (`virsh/NAME.txt`): by its path, by
/// its name alone (the `fx("NAME.txt")` of a module that knows the
/// directory), or, quoted whole, by either without `.txt`, `.err` or
/// `.code` (the harness's `recorded("virsh/NAME")` replays all three).
fn names_of(rel: &str) -> Vec<String> {
    let base = rel.rsplit('/').next().unwrap();
    let mut names = vec![rel.to_string(), format!("\"{base}\"")];
    for ext in [".txt", ".err", ".code"] {
        if let Some(stem) = rel.strip_suffix(ext) {
            let base_stem = stem.rsplit('/').next().unwrap();
            names.push(format!("\"{stem}\""));
            names.push(format!("\"{base_stem}\""));
        }
    }
    names
}

#[test]
fn every_recording_is_read_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let code = text_of(&["src", "tests"]);
    // The scripts that read a recording (benchmarks, the test guest's
    // image) name it by its whole path.
    let scripts = text_of(&["scripts"]);
    let mut files = Vec::new();
    files_under(&root, &mut files);
    let mut unread: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .filter(|rel| !NOT_READ.contains(&rel.as_str()))
        .filter(|rel| {
            !names_of(rel).iter().any(|n| code.contains(n))
                && !scripts.contains(&format!("fixtures/{rel}"))
        })
        .collect();
    unread.sort();
    assert!(
        unread.is_empty(),
        "recordings no test or script reads (use them, or delete them and their line in fixtures/README.md): {unread:#?}"
    );
}

#[test]
fn the_check_sees_each_way_of_naming_a_recording() {
    let named = |rel: &str, code: &str| names_of(rel).iter().any(|n| code.contains(n.as_str()));
    assert!(named("d/a-b.txt", r#".recorded("d/a-b")"#));
    assert!(named("d/a-b.err", r#"fx("a-b.err")"#));
    assert!(named("d/a-b.code", r#"world_at("a-b")"#));
    assert!(named("d/a-b.json", r#"fixture("d/a-b.json")"#));
    // A longer name that starts the same is not a use.
    assert!(!named("d/a-b-c.txt", r#".recorded("d/a-b")"#));
    assert!(!named("d/a-b.json", r#"fixture("d/a-b")"#));
}
