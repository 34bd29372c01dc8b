//! Embeds the web app (`web/app/`, plain ES modules, no build step of its own) into the
//! binary: every file is included as it is and, when that is smaller, gzip-compressed here,
//! at compile time, so the server never compresses a request's answer. One hash over every
//! file names the version: assets are served below `/assets/<hash>/`, so a browser may keep
//! them forever and still never mixes two versions.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let app = manifest.join("../../web/app");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed={}", app.display());

    let mut files = Vec::new();
    collect(&app, &app, &mut files);
    files.sort();

    let mut hasher = Sha256::new();
    let mut entries = String::new();
    let gz_dir = out.join("web-gz");
    std::fs::create_dir_all(&gz_dir).unwrap_or_else(|error| panic!("creating {gz_dir:?}: {error}"));
    for (index, relative) in files.iter().enumerate() {
        let path = app.join(relative);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|error| panic!("reading {path:?}: {error}"));
        hasher.update(relative.as_bytes());
        hasher.update([0]);
        hasher.update(&bytes);
        hasher.update([0]);
        let gzip = if compressible(relative) {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder
                .write_all(&bytes)
                .unwrap_or_else(|error| panic!("gzip: {error}"));
            let compressed = encoder
                .finish()
                .unwrap_or_else(|error| panic!("gzip: {error}"));
            (compressed.len() < bytes.len()).then_some(compressed)
        } else {
            None
        };
        let gzip = match gzip {
            Some(compressed) => {
                let gz_path = gz_dir.join(format!("{index}.gz"));
                std::fs::write(&gz_path, compressed)
                    .unwrap_or_else(|error| panic!("writing {gz_path:?}: {error}"));
                format!("Some(include_bytes!({:?}))", gz_path.display().to_string())
            }
            None => "None".to_owned(),
        };
        let _ = writeln!(
            entries,
            "    Asset {{ path: {relative:?}, content_type: {:?}, raw: include_bytes!({:?}), gzip: {gzip} }},",
            content_type(relative),
            path.display().to_string(),
        );
    }
    let digest = hasher.finalize();
    let hash: String = digest
        .iter()
        .take(6)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let code = format!(
        "/// One hash over every file of the app: the version in the assets' URLs.\n\
         pub const ASSET_VERSION: &str = {hash:?};\n\
         /// Every file of `web/app/`, sorted by path.\n\
         pub static ASSETS: &[Asset] = &[\n{entries}];\n"
    );
    let target = out.join("web_assets.rs");
    std::fs::write(&target, code).unwrap_or_else(|error| panic!("writing {target:?}: {error}"));
}

/// Every file below `dir`, as paths relative to `root` with `/` separators.
fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("reading {dir:?}: {error}"));
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let parts: Vec<String> = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push(parts.join("/"));
        }
    }
}

fn extension(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(_, extension)| extension)
}

fn compressible(path: &str) -> bool {
    matches!(
        extension(path),
        "html" | "js" | "mjs" | "css" | "svg" | "json" | "txt" | "webmanifest"
    )
}

fn content_type(path: &str) -> &'static str {
    match extension(path) {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
