//! The compatibility matrix: the run document ([`document`]) and what is
//! rendered from it: Markdown ([`markdown`]), self-contained HTML
//! ([`html`]), JUnit XML ([`junit`]); and what changed between two documents
//! with the CI gate ([`diff`]).

pub mod diff;
pub mod document;
pub mod html;
pub mod junit;
pub mod markdown;

pub use document::{RunDocument, DOCUMENT_SCHEMA_VERSION};

use std::path::Path;

/// Writes `matrix.json`, `matrix.md`, `index.html` and `junit.xml` into `dir`.
pub fn write_all(doc: &RunDocument, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let files = [
        ("matrix.json", doc.to_json()),
        ("matrix.md", markdown::render(doc)),
        ("index.html", html::render(doc)),
        ("junit.xml", junit::render(doc)),
    ];
    let mut out = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        out.push(p);
    }
    Ok(out)
}
