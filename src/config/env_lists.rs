//! Comma-separated environment values for list-typed keys:
//! `KIZUNA_TLS__TRUSTED_PROXIES=10.0.0.1,10.0.0.2` is the list `["10.0.0.1", "10.0.0.2"]`.
//!
//! Whether a key is a list is the configuration type's business, so the split is made where
//! deserialization asks for a sequence and finds a string that came from the environment:
//! only list-typed keys are split (`KIZUNA_LOG_LEVEL=info,kizuna=debug` stays one filter),
//! and values written as an array (`["10.0.0.1", "10.0.0.2"]`) are figment's, as before.

use figment::Figment;
use figment::error::{Actual, Kind};
use figment::providers::Serialized;
use serde::de::DeserializeOwned;

/// The items of a comma-separated value: trimmed, empty ones dropped (so an empty value is
/// an empty list). `None` for a value written as an array (`[…]`), which is not split.
pub(super) fn split_list(raw: &str) -> Option<Vec<String>> {
    if raw.trim_start().starts_with('[') {
        return None;
    }
    Some(
        raw.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(String::from)
            .collect(),
    )
}

/// Extracts the configuration, reading an environment value as a comma-separated list where
/// the type wants a list. `raw` gives the text of the environment variable for a key path
/// (`tls.trusted_proxies`), as written, when there is one. Each item is text.
pub(super) fn extract<T: DeserializeOwned>(
    mut figment: Figment,
    raw: impl Fn(&str) -> Option<String>,
) -> Result<T, Box<figment::Error>> {
    // Deserialization stops at the first error, so each pass can settle one key; a key is
    // settled once (if its items are then the wrong type, that error is the answer).
    let mut settled: Vec<String> = Vec::new();
    loop {
        let error = match figment.extract::<T>() {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let Some(key) = string_where_a_list_belongs(&error) else {
            return Err(Box::new(error));
        };
        let items = match raw(&key).as_deref().and_then(split_list) {
            Some(items) if !settled.contains(&key) => items,
            _ => return Err(Box::new(error)),
        };
        figment = figment.merge(Serialized::default(&key, items));
        settled.push(key);
    }
}

/// The key (dotted, without figment's profile) of an environment value that deserialization
/// wanted as a sequence and found a scalar.
fn string_where_a_list_belongs(error: &figment::Error) -> Option<String> {
    let Kind::InvalidType(actual, expected) = &error.kind else {
        return None;
    };
    let scalar = matches!(
        actual,
        Actual::Str(_)
            | Actual::Bool(_)
            | Actual::Unsigned(_)
            | Actual::Signed(_)
            | Actual::Float(_)
            | Actual::Char(_)
    );
    let from_environment = error
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.contains("environment"));
    if !scalar || expected != "a sequence" || !from_environment {
        return None;
    }
    let path = match error.path.first().map(String::as_str) {
        Some("default" | "global") if error.path.len() > 1 => &error.path[1..],
        _ => &error.path[..],
    };
    Some(path.join("."))
}

#[cfg(test)]
mod tests {
    use figment::providers::{Env, Format, Toml};
    use figment::value::{Dict, Map, Value};
    use figment::{Metadata, Profile, Provider};

    use super::*;
    use crate::config::Config;

    #[test]
    fn items_are_trimmed_and_empty_ones_dropped() {
        assert_eq!(
            split_list(" jpki, jpki2 ,,"),
            Some(vec!["jpki".to_string(), "jpki2".to_string()])
        );
        assert_eq!(split_list("10.0.0.1"), Some(vec!["10.0.0.1".to_string()]));
        assert_eq!(split_list(""), Some(vec![]));
        assert_eq!(split_list(" [\"a\", \"b\"]"), None, "an array is figment's");
    }

    /// An environment variable without the process environment (tests run side by side):
    /// named, parsed and labelled as `Env::prefixed("KIZUNA_").split("__")` does.
    struct FakeVar(&'static str, &'static str);

    fn key(var: &str) -> String {
        var["KIZUNA_".len()..]
            .replace("__", ".")
            .to_ascii_lowercase()
    }

    impl Provider for FakeVar {
        fn metadata(&self) -> Metadata {
            Env::prefixed("KIZUNA_").metadata()
        }

        fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
            let value: Value = self.1.parse().expect("infallible");
            match figment::util::nest(&key(self.0), value) {
                Value::Dict(_, dict) => Ok(Profile::Default.collect(dict)),
                _ => unreachable!("a key nests into a dictionary"),
            }
        }
    }

    /// Extracts a configuration from the defaults, a file's text and some variables.
    fn load_with(
        toml: &str,
        vars: &[(&'static str, &'static str)],
    ) -> Result<Config, Box<figment::Error>> {
        let mut figment =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml));
        for (var, value) in vars {
            figment = figment.merge(FakeVar(var, value));
        }
        extract(figment, |wanted| {
            vars.iter()
                .find(|(var, _)| key(var) == wanted)
                .map(|(_, value)| value.to_string())
        })
    }

    fn load(vars: &[(&'static str, &'static str)]) -> Result<Config, Box<figment::Error>> {
        load_with("", vars)
    }

    #[test]
    fn a_comma_separated_value_of_a_list_key_is_a_list() {
        let config = load(&[
            ("KIZUNA_ASSURANCE__JPKI_OIDC__UPSTREAMS", "jpki,jpki2"),
            ("KIZUNA_TLS__TRUSTED_PROXIES", "10.0.0.1, 10.0.0.2"),
        ])
        .unwrap();
        assert_eq!(config.assurance.jpki_oidc.upstreams, ["jpki", "jpki2"]);
        assert_eq!(config.tls.trusted_proxies, ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn one_item_and_number_like_items_are_text() {
        let config = load(&[
            ("KIZUNA_ASSURANCE__JPKI_OIDC__UPSTREAMS", "2024"),
            ("KIZUNA_TLS__TRUSTED_PROXIES", "10.0.0.1"),
        ])
        .unwrap();
        assert_eq!(config.assurance.jpki_oidc.upstreams, ["2024"]);
        assert_eq!(config.tls.trusted_proxies, ["10.0.0.1"]);
    }

    #[test]
    fn an_array_value_keeps_working() {
        let config = load(&[(
            "KIZUNA_TLS__TRUSTED_PROXIES",
            r#"["10.0.0.1", "10.1.0.0/16"]"#,
        )])
        .unwrap();
        assert_eq!(config.tls.trusted_proxies, ["10.0.0.1", "10.1.0.0/16"]);
    }

    #[test]
    fn a_scalar_key_with_a_comma_is_not_split() {
        let config = load(&[
            ("KIZUNA_LOG_LEVEL", "info,kizuna=debug"),
            ("KIZUNA_TLS__TRUSTED_PROXIES", "10.0.0.1,10.0.0.2"),
        ])
        .unwrap();
        assert_eq!(config.log_level, "info,kizuna=debug");
        assert_eq!(config.tls.trusted_proxies, ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn a_string_in_the_file_is_not_taken_for_a_list() {
        let error = load_with("[tls]\ntrusted_proxies = \"10.0.0.1,10.0.0.2\"\n", &[]).unwrap_err();
        assert!(error.to_string().contains("sequence"), "{error}");
    }

    #[test]
    fn a_broken_array_is_reported_not_split() {
        let error = load(&[("KIZUNA_TLS__TRUSTED_PROXIES", "[10.0.0.1, 10.0.0.2")]).unwrap_err();
        assert!(error.to_string().contains("sequence"), "{error}");
    }
}
