//! Where cloud code's files come from: the entry file and what it `require`s or `import`s by
//! relative path (or from `node_modules`), read once per load into a [`CodeSnapshot`].
//!
//! Runtimes are (re)built from the snapshot, never from the disk directly, so a runtime that
//! is rebuilt after a timeout runs the same code as its siblings even if a file was edited
//! meanwhile; only a successful reload (`--cloud-watch`) replaces the snapshot.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Node.js modules that cloud code may name but that do not exist here: naming one fails
/// with a message that says so, instead of a bare "file not found".
const NODE_BUILTINS: [&str; 36] = [
    "assert",
    "async_hooks",
    "buffer",
    "child_process",
    "cluster",
    "console",
    "constants",
    "crypto",
    "dgram",
    "diagnostics_channel",
    "dns",
    "domain",
    "events",
    "fs",
    "fs/promises",
    "http",
    "http2",
    "https",
    "inspector",
    "module",
    "net",
    "os",
    "path",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "repl",
    "stream",
    "string_decoder",
    "timers",
    "tls",
    "url",
    "util",
    "zlib",
];

/// A file's source and its modification time when it was read.
type ReadFile = (Arc<str>, Option<SystemTime>);

/// The files of one version of the cloud code, as read from disk.
#[derive(Debug, Default)]
pub struct CodeSnapshot {
    pub entry: PathBuf,
    /// Every file read so far, with its modification time when it was read.
    files: Mutex<HashMap<PathBuf, ReadFile>>,
}

impl CodeSnapshot {
    pub fn new(entry: PathBuf) -> CodeSnapshot {
        CodeSnapshot {
            entry,
            files: Mutex::default(),
        }
    }

    /// The source of `path`: from the snapshot, or read from disk (and kept) the first time.
    pub fn source(&self, path: &Path) -> Result<Arc<str>, String> {
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((source, _)) = files.get(path) {
            return Ok(Arc::clone(source));
        }
        let modified = std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok();
        let source: Arc<str> = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?
            .into();
        files.insert(path.to_owned(), (Arc::clone(&source), modified));
        Ok(source)
    }

    /// Whether a file read into the snapshot has changed on disk since.
    pub fn changed_on_disk(&self) -> bool {
        let files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        files.iter().any(|(path, (_, modified))| {
            std::fs::metadata(path)
                .and_then(|meta| meta.modified())
                .ok()
                != *modified
        })
    }
}

impl CodeSnapshot {
    /// Takes the files' current modification times as seen, so that an edit that failed to
    /// load is reported once, not on every look.
    pub fn mark_seen(&self) {
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (path, (_, modified)) in files.iter_mut() {
            *modified = std::fs::metadata(path)
                .and_then(|meta| meta.modified())
                .ok();
        }
    }
}

/// Whether a source is an ES module (it has a top-level `import` or `export` statement);
/// anything else is loaded as CommonJS, as Node does for a `.js` file without `"type"`.
pub fn is_es_module(path: &Path, source: &str) -> bool {
    if path.extension().is_some_and(|ext| ext == "mjs") {
        return true;
    }
    if path.extension().is_some_and(|ext| ext == "cjs") {
        return false;
    }
    source.lines().any(|line| {
        let line = line.trim_start();
        (line.starts_with("import ") || line.starts_with("import{") || line.starts_with("import*"))
            && !line.starts_with("import(")
            || line.starts_with("export ")
            || line.starts_with("export{")
    })
}

/// Resolves `specifier` as written in the file `from` (a path, or the entry's folder for the
/// entry itself) to an absolute file path.
pub fn resolve(from: &Path, specifier: &str) -> Result<PathBuf, String> {
    let base = from.parent().unwrap_or(Path::new("/"));
    let bare = specifier.strip_prefix("node:").unwrap_or(specifier);
    if specifier.starts_with("node:") || NODE_BUILTINS.contains(&bare) {
        return Err(format!(
            "Cloud Code in Parlor runs without Node.js: the built-in module \"{bare}\" is not available (use Parse.Cloud.httpRequest for HTTP)"
        ));
    }
    if specifier.starts_with('.') || specifier.starts_with('/') {
        let joined = normalize(&base.join(specifier));
        return file_or_index(&joined)
            .ok_or_else(|| format!("Cannot find module \"{specifier}\" from {}", from.display()));
    }
    // A package: the nearest node_modules folder holding it, as Node looks.
    let (package, subpath) = match specifier.split_once('/') {
        Some((scope, rest)) if scope.starts_with('@') => match rest.split_once('/') {
            Some((name, sub)) => (format!("{scope}/{name}"), Some(sub)),
            None => (specifier.to_owned(), None),
        },
        Some((name, sub)) => (name.to_owned(), Some(sub)),
        None => (specifier.to_owned(), None),
    };
    for dir in base.ancestors() {
        let root = dir.join("node_modules").join(&package);
        if !root.is_dir() {
            continue;
        }
        if root.join("binding.gyp").exists() || root.join("build/Release").is_dir() {
            return Err(format!(
                "The npm package \"{package}\" has native (C/C++) code, which Cloud Code in Parlor cannot load"
            ));
        }
        if let Some(sub) = subpath {
            return file_or_index(&root.join(sub))
                .ok_or_else(|| format!("Cannot find module \"{specifier}\""));
        }
        let main = std::fs::read_to_string(root.join("package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|manifest| {
                manifest
                    .get("main")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "index.js".to_owned());
        return file_or_index(&normalize(&root.join(main)))
            .ok_or_else(|| format!("Cannot find the main file of the npm package \"{package}\""));
    }
    Err(format!(
        "Cannot find module \"{specifier}\" (not a relative path, and no node_modules folder has it)"
    ))
}

fn file_or_index(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_owned());
    }
    for extension in ["js", "mjs", "cjs", "json"] {
        let candidate = PathBuf::from(format!("{}.{extension}", path.display()));
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let index = path.join("index.js");
    index.is_file().then_some(index)
}

/// `a/./b/../c` → `a/c`, without touching the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es_modules_are_told_from_commonjs() {
        let path = Path::new("main.js");
        assert!(is_es_module(path, "import { x } from './x.js';\n"));
        assert!(is_es_module(path, "const a = 1;\nexport default a;\n"));
        assert!(!is_es_module(
            path,
            "const x = require('./x');\nParse.Cloud.define('a', () => 1);\n"
        ));
        assert!(!is_es_module(path, "const m = await import('./x.js');\n"));
    }

    #[test]
    fn node_builtins_are_named_in_the_refusal() {
        let error = resolve(Path::new("/app/main.js"), "fs").unwrap_err();
        assert!(error.contains("\"fs\""), "{error}");
        let error = resolve(Path::new("/app/main.js"), "node:crypto").unwrap_err();
        assert!(error.contains("\"crypto\""), "{error}");
    }
}
