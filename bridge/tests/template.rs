//! The dashboard in template.yaml against the bridge's code: every bridge counter it shows is one
//! `Stats::report` writes, under the dimension set it publishes.

use hookrelay_bridge::stats::Stats;
use hookrelay_devtools::template::{NAMESPACE_PLACEHOLDER, dashboard_metrics};

#[test]
fn the_dashboards_bridge_widgets_read_counters_the_bridge_writes() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let documents: Vec<serde_json::Value> = Stats::default()
        .report("hookrelay", 1)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut checked = 0;
    for metric in dashboard_metrics(&text) {
        if metric.namespace != NAMESPACE_PLACEHOLDER
            || !["Published", "Reconnects"].contains(&metric.name.as_str())
        {
            continue;
        }
        let names: Vec<&str> = metric.dimensions.iter().map(|(n, _)| n.as_str()).collect();
        let stream = &metric.dimensions[0].1;
        let document = documents
            .iter()
            .find(|d| d["stream"] == stream.as_str())
            .unwrap_or_else(|| panic!("the bridge reports no stream {stream}"));
        assert!(document[metric.name.as_str()].is_number(), "{metric:?}");
        let sets = document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            .as_array()
            .unwrap();
        assert!(
            sets.contains(&serde_json::json!(names)),
            "{metric:?}: {sets:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 4, "published and reconnects, for both streams");
}
