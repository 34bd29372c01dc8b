//! The pages behind the links of account mail (`{mount}/apps/…`, where Parse Server serves
//! them): choosing a new password after a reset request, and confirming an email address.
//!
//! A browser (a request that accepts `text/html` and is not an XHR) gets HTML; an API client
//! gets JSON as before (`POST` the new password as `new_password`). As in Parse Server, a form
//! `POST` that succeeds answers with a redirect (`303`) to its success page, so reloading that
//! page posts nothing twice; a form that fails shows again with the reason and changes nothing.
//! Parse Server's `error` query parameter is not shown: a page never displays text a link can
//! make up.
//!
//! The pages are plain HTML and one stylesheet compiled into the binary (`pages/`): no script,
//! nothing from another origin (the Content-Security-Policy forbids both), and every value is
//! escaped ([`render`]). Their links are relative, so they work behind any proxy and mount
//! path. The mailed links carry their own token, so these routes need no application-id header;
//! the application id is a path segment.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parlor_core::{Code, Error};
use serde_json::{Value, json};

use super::error::ApiError;
use super::into_http;
use super::routes::{ApiResponse, percent_decode};
use super::state::AppState;
use crate::operation::OpError;
use crate::operation::account_email::{PasswordReset, is_invalid_link};

const LAYOUT: &str = include_str!("pages/layout.html");
const STYLESHEET: &str = include_str!("pages/pages.css");
const CHOOSE_PASSWORD: &str = include_str!("pages/choose_password.html");
const ERROR_NOTE: &str = include_str!("pages/error_note.html");
const PASSWORD_CHANGED: &str = include_str!("pages/password_changed.html");
const INVALID_LINK: &str = include_str!("pages/invalid_link.html");
const EMAIL_VERIFIED: &str = include_str!("pages/email_verified.html");
const INVALID_VERIFICATION_LINK: &str = include_str!("pages/invalid_verification_link.html");
const RESEND_FORM: &str = include_str!("pages/resend_form.html");
const LINK_SENT: &str = include_str!("pages/link_sent.html");
const SERVER_ERROR: &str = include_str!("pages/server_error.html");

/// Only this server's stylesheet and forms: no script at all, inline or not, no frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLESHEET_PATH: &str = "pages.css";
/// Where a successful form sends the browser (Parse Server's names for these pages).
const PASSWORD_CHANGED_PATH: &str = "password_reset_success.html";
const LINK_SENT_PATH: &str = "link_send_success.html";

/// A request below `{mount}/apps/`.
pub struct PageRequest<'a> {
    pub method: &'a Method,
    /// The path after `{mount}/apps/`, as sent.
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Answers a request below `{mount}/apps/`.
pub async fn handle(state: &AppState, request: PageRequest<'_>) -> Response {
    let segments: Vec<String> = request
        .rest
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let app_id = state.config.app_id.as_str();
    let fields = Fields::read(request.query, request.body);
    let page = Place::new(request.rest, app_id);
    let html = wants_html(request.headers);
    let in_app = |app: &str| app == app_id;
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", [STYLESHEET_PATH]) => stylesheet(),
        ("GET", [PASSWORD_CHANGED_PATH]) => page.show(
            StatusCode::OK,
            "Password changed",
            &render(PASSWORD_CHANGED, &[]),
        ),
        ("GET", [LINK_SENT_PATH]) => {
            page.show(StatusCode::OK, "Check your mail", &render(LINK_SENT, &[]))
        }
        // Parse Server's own page for the form, which older links and custom mails point to.
        ("GET", ["choose_password"]) if fields.get("id") == app_id => {
            show_reset_form(state, &page, &fields, true).await
        }
        ("GET", ["choose_password"]) => page.invalid_link(),
        ("GET", [app, "request_password_reset"]) if in_app(app) => {
            show_reset_form(state, &page, &fields, html).await
        }
        ("POST", [app, "request_password_reset"]) if in_app(app) => {
            reset_password(state, &page, &fields, html).await
        }
        ("GET" | "POST", [app, "verify_email"]) if in_app(app) => {
            verify_email(state, &page, &fields, html).await
        }
        ("POST", [app, "resend_verification_email"]) if in_app(app) => {
            resend_verification_email(state, &page, &fields, html).await
        }
        _ => ApiError::NotRouted {
            method: request.method.to_string(),
            path: format!("/apps/{}", request.rest),
        }
        .into_response(),
    }
}

/// A browser navigating or posting a form asks for `text/html`. Other clients (curl, SDKs,
/// scripts sending `X-Requested-With: XMLHttpRequest`, Parse Server's `req.xhr`) get JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    let xhr = headers
        .get("x-requested-with")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("XMLHttpRequest"));
    let accepts_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/html"))
        });
    accepts_html && !xhr
}

/// The fields of a link or form: from the query string, then from a JSON or form body.
struct Fields(HashMap<String, String>);

impl Fields {
    fn read(query: Option<&str>, body: &[u8]) -> Fields {
        let mut fields: HashMap<String, String> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect();
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => fields.extend(
                map.into_iter()
                    .filter_map(|(key, value)| value.as_str().map(|text| (key, text.to_owned()))),
            ),
            _ => fields.extend(
                form_urlencoded::parse(body)
                    .map(|(key, value)| (key.into_owned(), value.into_owned())),
            ),
        }
        Fields(fields)
    }

    /// The field's value, or `""` when it was not sent.
    fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or_default()
    }

    fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// `GET …/request_password_reset?token=&username=` (and `GET choose_password`): the form for
/// the new password, if the link still works.
async fn show_reset_form(state: &AppState, page: &Place, fields: &Fields, html: bool) -> Response {
    let (token, username) = (fields.get("token"), fields.get("username"));
    let checked = state.operations.check_reset_link(token, username).await;
    if !html {
        return answer_json(checked.map(|()| json!({})));
    }
    match checked {
        Ok(()) => page.reset_form(StatusCode::OK, username, token, None),
        Err(error) if is_invalid_link(&error) => page.invalid_link(),
        Err(error) => page.failure(error.into()),
    }
}

/// `POST …/request_password_reset {token, username, new_password, confirm_new_password?}`.
async fn reset_password(state: &AppState, page: &Place, fields: &Fields, html: bool) -> Response {
    let (token, username) = (fields.get("token"), fields.get("username"));
    let reset = PasswordReset {
        token,
        username,
        new_password: fields.get("new_password"),
        confirmation: fields.optional("confirm_new_password"),
    };
    let result = state.operations.reset_password(reset).await;
    if !html {
        return answer_json(result);
    }
    let error = match result {
        Ok(_) => return page.redirect(PASSWORD_CHANGED_PATH),
        Err(error) if is_invalid_link(&error) => return page.invalid_link(),
        Err(error) => ApiError::from(error),
    };
    match error {
        // The link works, what came with it does not: the form again, with the reason.
        ApiError::Parse(error) if error.code != Code::InternalServerError => page.reset_form(
            StatusCode::BAD_REQUEST,
            username,
            token,
            Some(&form_message(&error)),
        ),
        other => page.failure(other),
    }
}

/// A form error as a person reads it.
fn form_message(error: &Error) -> String {
    match error.code {
        Code::PasswordMissing => "Enter a new password.".to_owned(),
        _ => error.message.to_string(),
    }
}

/// `GET …/verify_email?token=&username=`.
async fn verify_email(state: &AppState, page: &Place, fields: &Fields, html: bool) -> Response {
    let username = fields.get("username");
    let result = state
        .operations
        .verify_email(fields.get("token"), username)
        .await;
    if !html {
        return answer_json(result);
    }
    match result {
        Ok(_) => page.show(
            StatusCode::OK,
            "Email verified",
            &render(EMAIL_VERIFIED, &[]),
        ),
        Err(error) if is_invalid_link(&error) => page.invalid_verification_link(username),
        Err(error) => page.failure(error.into()),
    }
}

/// `POST …/resend_verification_email {username}`: the invalid verification link's button.
async fn resend_verification_email(
    state: &AppState,
    page: &Place,
    fields: &Fields,
    html: bool,
) -> Response {
    let result = state
        .operations
        .resend_verification_email(fields.get("username"))
        .await;
    if !html {
        return answer_json(result.map(|()| json!({})));
    }
    match result {
        Ok(()) => page.redirect(LINK_SENT_PATH),
        Err(error) => page.failure(error.into()),
    }
}

fn answer_json(result: Result<Value, OpError>) -> Response {
    match result {
        Ok(body) => into_http(ApiResponse::ok(body)),
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn stylesheet() -> Response {
    let mut response = STYLESHEET.into_response();
    set_headers(
        response.headers_mut(),
        "text/css; charset=utf-8",
        "public, max-age=3600",
    );
    response
}

/// The headers of every page: what it is, that it may not run scripts or load anything from
/// elsewhere, be framed, or leak its URL (which holds the token) to another site.
fn set_headers(headers: &mut HeaderMap, content_type: &'static str, cache: &'static str) {
    let pairs = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, cache),
    ];
    for (name, value) in pairs {
        headers.insert::<HeaderName>(name, HeaderValue::from_static(value));
    }
}

/// Where the page being answered sits below `{mount}/apps/`, for the relative links it
/// carries: the stylesheet, its forms' targets, a redirect.
struct Place {
    /// `../` once per folder between the page and `{mount}/apps/`.
    to_apps: String,
    /// The application id as a path segment.
    app_segment: String,
}

impl Place {
    fn new(rest: &str, app_id: &str) -> Place {
        Place {
            to_apps: "../".repeat(rest.matches('/').count()),
            app_segment: form_urlencoded::byte_serialize(app_id.as_bytes())
                .collect::<String>()
                .replace('+', "%20"),
        }
    }

    /// A page directly below `{mount}/apps/`.
    fn link(&self, path: &str) -> String {
        format!("{}{path}", self.to_apps)
    }

    /// A route of the application below `{mount}/apps/<appId>/`.
    fn app_link(&self, route: &str) -> String {
        format!("{}{}/{route}", self.to_apps, self.app_segment)
    }

    /// `content` inside the common layout, with the pages' headers.
    fn show(&self, status: StatusCode, title: &str, content: &Html) -> Response {
        let stylesheet = self.link(STYLESHEET_PATH);
        let document = render(
            LAYOUT,
            &[
                ("title", Slot::Text(title)),
                ("stylesheet", Slot::Text(&stylesheet)),
                ("content", Slot::Markup(content)),
            ],
        );
        let mut response = (status, document.0).into_response();
        set_headers(
            response.headers_mut(),
            "text/html; charset=utf-8",
            "no-store",
        );
        response
    }

    /// `303 See Other` to a page below `{mount}/apps/`: the browser then GETs it.
    fn redirect(&self, path: &str) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        set_headers(
            response.headers_mut(),
            "text/html; charset=utf-8",
            "no-store",
        );
        if let Ok(location) = HeaderValue::from_str(&self.link(path)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }

    fn reset_form(
        &self,
        status: StatusCode,
        username: &str,
        token: &str,
        error: Option<&str>,
    ) -> Response {
        let note = match error {
            Some(message) => render(ERROR_NOTE, &[("message", Slot::Text(message))]),
            None => Html::default(),
        };
        let action = self.app_link("request_password_reset");
        let content = render(
            CHOOSE_PASSWORD,
            &[
                ("username", Slot::Text(username)),
                ("token", Slot::Text(token)),
                ("action", Slot::Text(&action)),
                ("error", Slot::Markup(&note)),
            ],
        );
        self.show(status, "Choose a new password", &content)
    }

    fn invalid_link(&self) -> Response {
        self.show(
            StatusCode::BAD_REQUEST,
            "Invalid link",
            &render(INVALID_LINK, &[]),
        )
    }

    /// The invalid verification link's page, with a button for a new link when the link
    /// named an account.
    fn invalid_verification_link(&self, username: &str) -> Response {
        let resend = if username.is_empty() {
            Html::default()
        } else {
            let action = self.app_link("resend_verification_email");
            render(
                RESEND_FORM,
                &[
                    ("action", Slot::Text(&action)),
                    ("username", Slot::Text(username)),
                ],
            )
        };
        let content = render(
            INVALID_VERIFICATION_LINK,
            &[("resend", Slot::Markup(&resend))],
        );
        self.show(StatusCode::BAD_REQUEST, "Invalid link", &content)
    }

    /// Any other failure: the status it has for API clients, and a page that says so.
    fn failure(&self, error: ApiError) -> Response {
        error.log();
        let (status, _) = error.status_and_body();
        self.show(status, "Something went wrong", &render(SERVER_ERROR, &[]))
    }
}

/// Markup that is safe to send: a template of ours filled by [`render`].
#[derive(Debug, Default)]
struct Html(String);

/// What fills a template's `{{name}}`: text, escaped on the way in, or markup rendered before.
enum Slot<'a> {
    Text(&'a str),
    Markup(&'a Html),
}

/// Fills `{{name}}` slots in one pass over the template, so a value that itself contains
/// `{{…}}` is never filled in turn.
fn render(template: &str, slots: &[(&str, Slot)]) -> Html {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        match slots.iter().find(|(slot, _)| *slot == name) {
            Some((_, Slot::Text(text))) => escape_into(&mut out, text),
            Some((_, Slot::Markup(html))) => out.push_str(&html.0),
            None => {}
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Html(out)
}

/// Escapes text for an element's content or a quoted attribute value.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every slot of every template is filled by the code that renders it: a template edit
    /// that adds a slot the code does not know shows up here.
    #[test]
    fn templates_use_only_known_slots() {
        let slots = |template: &str| -> Vec<String> {
            template
                .split("{{")
                .skip(1)
                .filter_map(|part| part.split_once("}}").map(|(name, _)| name.to_owned()))
                .collect()
        };
        let cases: [(&str, &[&str]); 11] = [
            (LAYOUT, &["title", "stylesheet", "content"]),
            (CHOOSE_PASSWORD, &["username", "token", "action", "error"]),
            (ERROR_NOTE, &["message"]),
            (PASSWORD_CHANGED, &[]),
            (INVALID_LINK, &[]),
            (EMAIL_VERIFIED, &[]),
            (INVALID_VERIFICATION_LINK, &["resend"]),
            (RESEND_FORM, &["action", "username"]),
            (LINK_SENT, &[]),
            (SERVER_ERROR, &[]),
            (STYLESHEET, &[]),
        ];
        for (template, known) in cases {
            for slot in slots(template) {
                assert!(known.contains(&slot.as_str()), "unknown slot {slot}");
            }
        }
    }

    /// Values are escaped once, and a value is never searched for slots.
    #[test]
    fn values_are_escaped_and_not_filled_again() {
        let html = render(
            "<p title=\"{{a}}\">{{b}}</p>",
            &[
                ("a", Slot::Text("\"><script>x</script>")),
                ("b", Slot::Text("{{a}} & 'q'")),
            ],
        );
        assert_eq!(
            html.0,
            "<p title=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\">{{a}} &amp; &#39;q&#39;</p>"
        );
    }

    /// Links are relative to the page: one `../` per folder below `{mount}/apps/`.
    #[test]
    fn links_are_relative_to_the_page() {
        let app_page = Place::new("my app/request_password_reset", "my app");
        assert_eq!(app_page.link("pages.css"), "../pages.css");
        assert_eq!(
            app_page.app_link("request_password_reset"),
            "../my%20app/request_password_reset"
        );
        let top_page = Place::new("choose_password", "my app");
        assert_eq!(top_page.link("pages.css"), "pages.css");
    }

    /// Browsers' navigations ask for HTML; curl, SDKs and XHRs do not.
    #[test]
    fn html_is_for_browsers() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_static(value));
            }
            map
        };
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(&headers(&[("accept", browser)])));
        assert!(wants_html(&headers(&[("accept", "Text/HTML; q=1")])));
        assert!(!wants_html(&headers(&[("accept", "*/*")])));
        assert!(!wants_html(&headers(&[])));
        assert!(!wants_html(&headers(&[("accept", "application/json")])));
        assert!(!wants_html(&headers(&[
            ("accept", browser),
            ("x-requested-with", "XMLHttpRequest")
        ])));
    }
}
