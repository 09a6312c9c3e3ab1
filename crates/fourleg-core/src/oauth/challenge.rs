//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1) and the well-known
//! URLs of metadata (RFC 8414 §3.1, RFC 9728 §3.1), for the resource side:
//! where a protected resource says its metadata is.

/// The value of the parameter `name` of the first `scheme` challenge in a
/// `WWW-Authenticate` value, unquoted (RFC 9110 §5.6.4); schemes and
/// parameter names compare case-insensitively (§11.1, §11.2).
///
/// A value may hold several challenges, separated by commas like their
/// parameters (`Basic realm="a", Bearer resource_metadata="…"`): an item
/// that starts with a token followed by a space opens a challenge.
#[must_use]
pub fn param(header: &str, scheme: &str, name: &str) -> Option<String> {
    let mut current: Option<String> = None;
    for item in split_items(header) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let rest = match item.split_once([' ', '\t']) {
            // `Bearer realm="x"`: a scheme, then its first parameter.
            Some((first, rest)) if !first.contains('=') => {
                current = Some(first.to_ascii_lowercase());
                rest.trim()
            }
            // A parameter of the current challenge.
            _ if item.contains('=') => item,
            // A scheme alone (`Bearer`).
            _ => {
                current = Some(item.to_ascii_lowercase());
                continue;
            }
        };
        if current.as_deref() != Some(scheme.to_ascii_lowercase().as_str()) {
            continue;
        }
        let Some((k, v)) = rest.split_once('=') else { continue };
        if k.trim().eq_ignore_ascii_case(name) {
            return Some(unquote(v.trim()));
        }
    }
    None
}

/// The schemes of a `WWW-Authenticate` value, lower case, in order.
#[must_use]
pub fn schemes(header: &str) -> Vec<String> {
    let mut out = Vec::new();
    for item in split_items(header) {
        let item = item.trim();
        let first = item.split([' ', '\t']).next().unwrap_or("");
        if !first.is_empty() && !first.contains('=') {
            out.push(first.to_ascii_lowercase());
        }
    }
    out
}

/// Splits at commas outside quoted strings.
fn split_items(header: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in header.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                cur.push(c);
                quoted = !quoted;
            }
            ',' if !quoted => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    items.push(cur);
    items
}

/// A token or a quoted string's content (backslash escapes resolved).
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::new();
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// The well-known URL of a protected resource's metadata (RFC 9728 §3.1):
/// `/.well-known/<suffix>` inserted between the host and the path, which
/// keeps its spelling (a path of `/` alone is the slash after the host);
/// `None` for a string that is not an absolute `http(s)` URL.
#[must_use]
pub fn well_known_url(identifier: &str, suffix: &str) -> Option<String> {
    let (scheme, rest) = identifier.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or("");
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    if authority.is_empty() {
        return None;
    }
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let path = if path == "/" { "" } else { path };
    let mut url = format!("{scheme}://{authority}/.well-known/{suffix}{path}");
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_is_found_in_its_own_challenge_only() {
        let h =
            r#"Bearer error="invalid_token", resource_metadata="http://h/.well-known/oauth-protected-resource/mcp""#;
        assert_eq!(
            param(h, "Bearer", "resource_metadata").as_deref(),
            Some("http://h/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(param(h, "bearer", "ERROR").as_deref(), Some("invalid_token"));
        let two = r#"Basic realm="a, b", Bearer resource_metadata="http://x/m""#;
        assert_eq!(param(two, "Bearer", "resource_metadata").as_deref(), Some("http://x/m"));
        assert_eq!(param(two, "Basic", "realm").as_deref(), Some("a, b"));
        assert_eq!(param(two, "Basic", "resource_metadata"), None, "the Bearer challenge's, not Basic's");
        assert_eq!(param("Bearer", "Bearer", "resource_metadata"), None);
        assert_eq!(param(r#"Bearer realm="q\"x""#, "Bearer", "realm").as_deref(), Some("q\"x"));
        assert_eq!(
            param("Bearer resource_metadata=token68ish", "Bearer", "resource_metadata").as_deref(),
            Some("token68ish")
        );
        assert_eq!(schemes(two), ["basic", "bearer"]);
    }

    #[test]
    fn the_well_known_segment_goes_before_the_path() {
        let w = |u| well_known_url(u, "oauth-protected-resource");
        assert_eq!(
            w("http://127.0.0.1:9/mcp").as_deref(),
            Some("http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(w("https://r.example/").as_deref(), Some("https://r.example/.well-known/oauth-protected-resource"));
        assert_eq!(w("https://r.example").as_deref(), Some("https://r.example/.well-known/oauth-protected-resource"));
        assert_eq!(
            w("https://r.example/a/b?x=1").as_deref(),
            Some("https://r.example/.well-known/oauth-protected-resource/a/b?x=1")
        );
        assert_eq!(
            w("https://r.example/mcp/").as_deref(),
            Some("https://r.example/.well-known/oauth-protected-resource/mcp/")
        );
        assert_eq!(w("r.example/mcp"), None);
        assert_eq!(w("ftp://r.example/mcp"), None);
    }
}
