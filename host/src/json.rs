//! JSON read into typed values with errors in a user's terms: where the value is (`policy.coalesce`)
//! and what is allowed (`` `sometimes` is not one of: latest, earliest, all ``) rather than
//! serde's own wording.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Reads `value` as a `T`; the error names the field at fault and what it may be.
pub fn read<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner().to_string();
        let mut path = e.path().to_string();
        if inner.starts_with("unknown field") {
            // The path ends with the unknown field itself: name where it was found.
            path = path
                .rsplit_once('.')
                .map_or_else(String::new, |(p, _)| p.to_owned());
        }
        let message = reword(&inner);
        if path.is_empty() || path == "." {
            message
        } else {
            format!("{path}: {message}")
        }
    })
}

/// serde's messages, reworded: the allowed values listed plainly.
fn reword(message: &str) -> String {
    let listed = |rest: &str| -> String {
        rest.replace("one of ", "")
            .replace(" or ", ", ")
            .replace('`', "")
    };
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some((given, allowed)) = rest.split_once(", expected ")
    {
        return format!("{given} is not one of: {}", listed(allowed));
    }
    if let Some(rest) = message.strip_prefix("unknown field ")
        && let Some((given, allowed)) = rest.split_once(", expected ")
    {
        return format!("unknown field {given} (known fields: {})", listed(allowed));
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        policy: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        coalesce: Choice,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Choice {
        Latest,
        Earliest,
        All,
    }

    #[test]
    fn errors_say_where_and_what_is_allowed() {
        let e =
            read::<Outer>(serde_json::json!({"policy": {"coalesce": "sometimes"}})).unwrap_err();
        assert_eq!(
            e,
            "policy.coalesce: `sometimes` is not one of: latest, earliest, all"
        );
        let e = read::<Outer>(serde_json::json!({"policy": {"colaesce": "all"}})).unwrap_err();
        assert_eq!(
            e,
            "policy: unknown field `colaesce` (known fields: coalesce)"
        );
    }
}
