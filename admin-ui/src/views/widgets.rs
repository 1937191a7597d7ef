//! The building blocks of a console page: sections of facts, tables and forms, the form
//! fields, and the small text helpers the pages share.

use super::t;
use kizuna_core::time::unix_to_rfc3339;

pub(super) fn time(unix: i64) -> String {
    unix_to_rfc3339(unix)
}

pub(super) fn opt_time(unix: Option<i64>) -> String {
    unix.map(time).unwrap_or_else(|| "-".into())
}

#[derive(Default)]
pub(super) struct Cell {
    pub(super) text: String,
    pub(super) href: Option<String>,
}

pub(super) fn cell(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        href: None,
    }
}

pub(super) fn link(text: impl Into<String>, href: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        href: Some(href.into()),
    }
}

#[derive(Default)]
pub(super) struct Row {
    pub(super) cells: Vec<Cell>,
    pub(super) select: String,
}

#[derive(Default)]
pub(super) struct Table {
    pub(super) headers: Vec<String>,
    pub(super) rows: Vec<Row>,
    /// A checkbox per row for the form with this id, under this field name.
    pub(super) select: Option<(String, String)>,
}

pub(super) fn table(headers: &[(&str, &str)], rows: Vec<Vec<Cell>>) -> Table {
    Table {
        headers: headers.iter().map(|(ja, en)| t(ja, en)).collect(),
        rows: rows
            .into_iter()
            .map(|cells| Row {
                cells,
                select: String::new(),
            })
            .collect(),
        select: None,
    }
}

#[derive(Default)]
pub(super) struct Field {
    pub(super) kind: &'static str,
    pub(super) name: &'static str,
    pub(super) label: String,
    pub(super) value: String,
    pub(super) options: Vec<(String, String)>,
    pub(super) required: bool,
    pub(super) max: usize,
}

pub(super) fn text_field(name: &'static str, label: String, value: &str) -> Field {
    Field {
        kind: "text",
        name,
        label,
        value: value.to_string(),
        max: 2048,
        ..Field::default()
    }
}

pub(super) fn required(mut f: Field) -> Field {
    f.required = true;
    f
}

pub(super) fn hidden(name: &'static str, value: &str) -> Field {
    Field {
        kind: "hidden",
        name,
        value: value.to_string(),
        ..Field::default()
    }
}

pub(super) fn select(
    name: &'static str,
    label: String,
    value: &str,
    options: Vec<(String, String)>,
) -> Field {
    Field {
        kind: "select",
        name,
        label,
        value: value.to_string(),
        options,
        ..Field::default()
    }
}

pub(super) struct Form {
    pub(super) id: String,
    pub(super) method: &'static str,
    pub(super) action: String,
    pub(super) fields: Vec<Field>,
    pub(super) submit: String,
    pub(super) danger: bool,
}

pub(super) fn post_form(
    id: &str,
    action: impl Into<String>,
    fields: Vec<Field>,
    submit: String,
) -> Form {
    Form {
        id: id.to_string(),
        method: "post",
        action: action.into(),
        fields,
        submit,
        danger: false,
    }
}

pub(super) fn danger(mut f: Form) -> Form {
    f.danger = true;
    f
}

pub(super) fn search_form(id: &str, action: &str, fields: Vec<Field>) -> Form {
    Form {
        id: id.to_string(),
        method: "get",
        action: action.to_string(),
        fields,
        submit: t("検索", "Search"),
        danger: false,
    }
}

#[derive(Default)]
pub(super) struct Section {
    pub(super) id: String,
    pub(super) title: String,
    pub(super) text: String,
    pub(super) facts: Vec<(String, String)>,
    pub(super) pre: Option<String>,
    pub(super) table: Option<Table>,
    pub(super) forms: Vec<Form>,
    pub(super) links: Vec<(String, String, bool)>,
}

pub(super) fn section(title: String) -> Section {
    Section {
        title,
        ..Section::default()
    }
}

pub(super) fn yes_no() -> Vec<(String, String)> {
    vec![
        ("true".into(), t("はい", "yes")),
        ("false".into(), t("いいえ", "no")),
    ]
}

pub(super) fn textarea(name: &'static str, label: String, value: String) -> Field {
    Field {
        kind: "textarea",
        name,
        label,
        value,
        ..Field::default()
    }
}

pub(super) fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// The status buttons of something a city administrator vets (a client, an upstream):
/// approve while it is pending (for those who may), enable when disabled, else disable.
pub(super) fn status_forms(base: &str, status: &str, may_approve: bool) -> Vec<Form> {
    let mut forms = Vec::new();
    if status == "pending" && may_approve {
        forms.push(post_form(
            "approve",
            format!("{base}/approve"),
            vec![],
            t("承認", "Approve"),
        ));
    }
    forms.push(if status == "disabled" {
        post_form(
            "enable",
            format!("{base}/enable"),
            vec![],
            t("有効にする", "Enable"),
        )
    } else {
        danger(post_form(
            "disable",
            format!("{base}/disable"),
            vec![],
            t("無効にする", "Disable"),
        ))
    });
    forms
}
