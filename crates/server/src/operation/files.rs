//! Files (§13): uploads by logged-in users (or the master key), stored by the store under a
//! unique name, served to anyone who has the URL, deleted by the master key.

use parlor_core::{Code, Error};
use rand::RngExt;
use serde_json::{Value, json};

use super::schema::require_master;
use super::{Auth, OpError, OpResult, Operations};

/// Extensions a browser would run as a page: refused, so an upload cannot host a phishing page
/// or a script on the API's origin.
const REFUSED_EXTENSIONS: [&str; 6] = ["html", "htm", "shtml", "xhtml", "xht", "svg"];

/// `^[_a-zA-Z0-9][a-zA-Z0-9@. ~_-]*$`, at most 128 characters (`122` otherwise).
fn check_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "@. ~_-".contains(c));
    if !first_ok || !rest_ok || name.len() > 128 {
        return Err(Error::new(
            Code::InvalidFileName,
            "Filename contains invalid characters.",
        ));
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase());
    if extension.is_some_and(|extension| REFUSED_EXTENSIONS.contains(&extension.as_str())) {
        return Err(Error::new(
            Code::FileSaveError,
            "File upload of extension html is disabled.",
        ));
    }
    Ok(())
}

/// The content type a name's extension suggests.
pub fn guess_content_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

impl Operations {
    /// The public URL of a stored file.
    pub fn file_url(&self, stored_name: &str) -> String {
        let encoded: String = form_urlencoded::byte_serialize(stored_name.as_bytes()).collect();
        format!(
            "{}/files/{}/{}",
            self.config.server_url,
            self.config.app_id,
            encoded.replace('+', "%20")
        )
    }

    /// `POST /files/:name`: stores the bytes; answers `{url, name}` with the unique name.
    pub async fn upload_file(
        &self,
        auth: &Auth,
        name: &str,
        content_type: Option<&str>,
        data: Vec<u8>,
    ) -> OpResult<Value> {
        if !auth.master && auth.user_id.is_none() && !self.config.file_upload_public {
            return Err(OpError::parse(
                Code::FileSaveError,
                "File upload by public is disabled.",
            ));
        }
        check_name(name)?;
        let prefix: [u8; 16] = rand::rng().random();
        let prefix: String = prefix.iter().map(|byte| format!("{byte:02x}")).collect();
        let stored_name = format!("{prefix}_{name}");
        let content_type = content_type
            .filter(|content_type| {
                !content_type.is_empty() && !content_type.starts_with("text/plain")
            })
            .unwrap_or_else(|| guess_content_type(name));
        self.store
            .put_file(&stored_name, content_type, data)
            .await?;
        Ok(json!({"url": self.file_url(&stored_name), "name": stored_name}))
    }

    /// `GET /files/:appId/:name`: anyone with the URL may read the file.
    pub async fn read_file(&self, stored_name: &str) -> OpResult<Option<(String, Vec<u8>)>> {
        Ok(self.store.get_file(stored_name).await?)
    }

    /// `DELETE /files/:name` (master key).
    pub async fn delete_file(&self, auth: &Auth, stored_name: &str) -> OpResult<Value> {
        require_master(auth)?;
        if !self.store.delete_file(stored_name).await? {
            return Err(OpError::parse(
                Code::FileDeleteError,
                "Could not delete file.",
            ));
        }
        Ok(json!({}))
    }
}
