//! API paths from a route's template and the names that fill it: each name
//! percent-encoded into one path segment, queries from their wire types.

use serde::Serialize;

use crate::ClientError;

/// `template` (a route like `api/v1/vaults/{}/items/{}`) with each `{}` replaced
/// by the next of `names`, percent-encoded as one path segment.
///
/// A name that is empty, `.` or `..` is refused: it would not stay one segment
/// (URL resolution removes dot segments, even encoded ones).
pub(crate) fn path(template: &str, names: &[&str]) -> Result<String, ClientError> {
    let fixed: Vec<&str> = template.split("{}").collect();
    if fixed.len() != names.len() + 1 {
        return Err(ClientError::InvalidRequest(format!(
            "the route {template} takes {} names, not {}",
            fixed.len() - 1,
            names.len()
        )));
    }
    let mut out = String::from(fixed[0]);
    for (name, after) in names.iter().zip(&fixed[1..]) {
        if matches!(*name, "" | "." | "..") {
            return Err(ClientError::InvalidRequest(format!(
                "{name:?} cannot name anything in {template}"
            )));
        }
        encode_segment(name, &mut out);
        out.push_str(after);
    }
    Ok(out)
}

/// `path` with `query` (a query type of the API) appended: its fields in their
/// wire names, fields that are absent (`null`) left out.
pub(crate) fn with_query<Q: Serialize>(path: String, query: &Q) -> Result<String, ClientError> {
    let invalid =
        |detail: String| ClientError::InvalidRequest(format!("the query of {path}: {detail}"));
    let fields = serde_json::to_value(query).map_err(|e| invalid(e.to_string()))?;
    let fields = fields
        .as_object()
        .ok_or_else(|| invalid("not a set of fields".into()))?;
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        match value.as_str() {
            Some(text) => pairs.append_pair(key, text),
            None => pairs.append_pair(key, &value.to_string()),
        };
    }
    let pairs = pairs.finish();
    Ok(if pairs.is_empty() {
        path
    } else {
        format!("{path}?{pairs}")
    })
}

/// Appends `name` to `out`, every byte but RFC 3986's unreserved characters
/// (letters, digits, `-`, `.`, `_`, `~`) as `%XX`.
fn encode_segment(name: &str, out: &mut String) {
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fill_the_template_in_order() {
        assert_eq!(
            path("api/v1/vaults/{}/items/{}/restore", &["Vault-1", "web01"]).unwrap(),
            "api/v1/vaults/Vault-1/items/web01/restore"
        );
        assert_eq!(path("api/v1/vaults", &[]).unwrap(), "api/v1/vaults");
        assert_eq!(
            path("api/v1/tokens/{}", &["t_1.a~b"]).unwrap(),
            "api/v1/tokens/t_1.a~b"
        );
    }

    #[test]
    fn names_are_percent_encoded_into_one_segment() {
        assert_eq!(
            path("api/v1/vaults/{}", &["a/b?c#d e%"]).unwrap(),
            "api/v1/vaults/a%2Fb%3Fc%23d%20e%25"
        );
        assert_eq!(
            path("api/v1/vaults/{}/items/{}", &["v", "vm:ü"]).unwrap(),
            "api/v1/vaults/v/items/vm%3A%C3%BC"
        );
    }

    #[test]
    fn names_that_are_no_segment_are_refused() {
        for bad in ["", ".", ".."] {
            let e = path("api/v1/vaults/{}/items", &[bad]).unwrap_err();
            assert!(matches!(e, ClientError::InvalidRequest(_)), "{bad:?}: {e}");
        }
        // Dots inside a name are fine.
        assert_eq!(path("x/{}", &["..a"]).unwrap(), "x/..a");
    }

    #[test]
    fn an_encoded_name_stays_one_segment_under_the_server_url() {
        let base = url::Url::parse("https://vault.example:8443/tresor/").unwrap();
        let url = base
            .join(&path("api/v1/vaults/{}/items", &["a/../b?c"]).unwrap())
            .unwrap();
        assert_eq!(url.path(), "/tresor/api/v1/vaults/a%2F..%2Fb%3Fc/items");
        assert_eq!(url.query(), None);
        assert_eq!(url.path_segments().unwrap().count(), 6);
    }

    #[test]
    fn a_name_count_that_does_not_fit_the_template_is_refused() {
        assert!(path("api/v1/vaults/{}", &[]).is_err());
        assert!(path("api/v1/vaults", &["extra"]).is_err());
    }

    #[test]
    fn queries_leave_absent_fields_out_and_encode_values() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Q {
            status: Option<String>,
            item: Option<String>,
            limit: Option<u32>,
            use_secondary_region: bool,
        }
        let q = Q {
            status: Some("In Progress&x".into()),
            item: None,
            limit: Some(50),
            use_secondary_region: true,
        };
        assert_eq!(
            with_query("api/v1/vaults/v/jobs".into(), &q).unwrap(),
            "api/v1/vaults/v/jobs?limit=50&status=In+Progress%26x&useSecondaryRegion=true"
        );
        let empty = Q {
            status: None,
            item: None,
            limit: None,
            use_secondary_region: false,
        };
        assert_eq!(
            with_query("p".into(), &empty).unwrap(),
            "p?useSecondaryRegion=false"
        );
    }
}
