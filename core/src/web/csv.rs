//! CSV rows (RFC 4180) for the exports people open in spreadsheet programs: the audit log
//! from the console and a resident's release history.

/// The fields joined by commas, each quoted where it must be; the caller ends the line.
pub fn row<S: AsRef<str>>(fields: &[S]) -> String {
    fields
        .iter()
        .map(|f| field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A field: quoted when it holds a comma, quote or line break (quotes doubled). A value a
/// spreadsheet would run as a formula (a service names itself, an audit target is what a
/// caller sent, so `=HYPERLINK(…)` is possible) gets a leading apostrophe; the JSON exports
/// carry every value unchanged.
pub fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_defuses_values_a_spreadsheet_would_run() {
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("@sum"), "'@sum");
        assert_eq!(field("市立保育園"), "市立保育園");
        assert_eq!(field("\tcmd"), "'\tcmd");
    }

    #[test]
    fn a_row_quotes_only_the_fields_that_need_it() {
        assert_eq!(row(&["a", "b,c", "d\"e"]), "a,\"b,c\",\"d\"\"e\"");
    }
}
