//! Who is asking: the resolved credentials of a request.

/// The caller of an operation, resolved once per request by the HTTP edge.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// The master key was sent (from an allowed address): skips ACL, CLP and protectedFields.
    pub master: bool,
    /// The logged-in user's objectId.
    pub user_id: Option<String>,
    /// Names of the roles the user holds, the hierarchy already resolved.
    pub roles: Vec<String>,
    /// The session token the request carried, if it resolved.
    pub session_token: Option<String>,
    pub installation_id: Option<String>,
    /// What the request carried besides credentials (headers, address, `context`), for the
    /// app's Cloud Code; set only when the app has some.
    pub request: Option<std::sync::Arc<super::hooks::RequestMeta>>,
}

impl Auth {
    pub fn master() -> Auth {
        Auth {
            master: true,
            ..Auth::default()
        }
    }

    /// The ACL entries this caller holds: `*`, its user id and `role:<name>` for each role.
    pub fn acl_group(&self) -> Vec<String> {
        let mut group = Vec::with_capacity(2 + self.roles.len());
        group.push("*".to_owned());
        if let Some(user_id) = &self.user_id {
            group.push(user_id.clone());
        }
        group.extend(self.roles.iter().map(|role| format!("role:{role}")));
        group
    }
}
