//! Reads what tests need from `template.yaml` without a YAML parser: the dashboard's metric
//! widgets, so each crate's tests can check the dashboard names only metrics (and dimension sets)
//! that crate's code really emits.

/// The placeholder the dashboard uses for the stack's metrics namespace.
pub const NAMESPACE_PLACEHOLDER: &str = "${MetricsNamespace}";

/// One metric line of a dashboard widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardMetric {
    /// The widget's title.
    pub widget: String,
    /// The namespace as written (`${MetricsNamespace}` for hookrelay's own).
    pub namespace: String,
    /// The metric name.
    pub name: String,
    /// Dimension names and values, in order.
    pub dimensions: Vec<(String, String)>,
}

/// The `DashboardBody` of `template` (the text of template.yaml) as JSON, with the stack's
/// `${...}` references other than the namespace replaced by their names.
pub fn dashboard_body(template: &str) -> serde_json::Value {
    let mut lines = template.lines();
    let start = lines
        .by_ref()
        .find(|line| line.trim_start().starts_with("DashboardBody: !Sub |"))
        .expect("template.yaml has a DashboardBody");
    let indent = start.len() - start.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|line| line.trim().is_empty() || line.len() - line.trim_start().len() > indent)
        .collect();
    let mut text = body.join("\n");
    // Substitute every ${Ref} but the namespace, as CloudFormation's !Sub would.
    let mut out = String::with_capacity(text.len());
    while let Some(at) = text.find("${") {
        out.push_str(&text[..at]);
        let end = text[at..].find('}').map(|e| at + e + 1).expect("closed ${");
        let reference = &text[at..end];
        if reference == NAMESPACE_PLACEHOLDER {
            out.push_str(reference);
        } else {
            out.push_str(&reference[2..reference.len() - 1]);
        }
        text = text[end..].to_owned();
    }
    out.push_str(&text);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("DashboardBody is not JSON: {e}\n{out}"))
}

/// Every metric line of every metric widget of the dashboard in `template`.
pub fn dashboard_metrics(template: &str) -> Vec<DashboardMetric> {
    let body = dashboard_body(template);
    let mut metrics = Vec::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        if widget["type"] != "metric" {
            continue;
        }
        let title = widget["properties"]["title"].as_str().unwrap_or_default();
        for line in widget["properties"]["metrics"].as_array().expect("metrics") {
            let parts: Vec<&str> = line
                .as_array()
                .expect("a metric line is an array")
                .iter()
                .filter_map(|part| part.as_str())
                .collect();
            assert!(
                parts.len() >= 2 && parts.len().is_multiple_of(2),
                "{title}: {line}"
            );
            metrics.push(DashboardMetric {
                widget: title.to_owned(),
                namespace: parts[0].to_owned(),
                name: parts[1].to_owned(),
                dimensions: parts[2..]
                    .chunks(2)
                    .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
                    .collect(),
            });
        }
    }
    metrics
}
