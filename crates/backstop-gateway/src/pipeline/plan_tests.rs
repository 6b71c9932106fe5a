//! A chat request's plan: fallback models built only when reached, split after the serving
//! candidate for a rescue, and the region policy applied group by group.

use super::*;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

const CONFIG: &str = r#"
[providers.us]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
region = "us-east-1"
[providers.eu]
kind = "openai"
base_url = "http://127.0.0.1:2/v1"
region = "eu-west-1"
[models.gpt]
targets = [{ provider = "us", model = "a" }, { provider = "us", model = "b" }]
fallbacks = ["mini", "euro"]
[models.mini]
targets = [{ provider = "us", model = "c" }]
[models.euro]
targets = [{ provider = "eu", model = "d" }, { provider = "eu", model = "e" }]
"#;

fn gateway() -> Arc<Gateway> {
    Arc::new(Gateway::new(crate::config::parse(CONFIG, &|_| None).unwrap()).unwrap())
}

fn request(gateway: &Gateway, regions: Option<&str>) -> Arc<ClientRequest> {
    let mut headers = HeaderMap::new();
    if let Some(regions) = regions {
        headers.insert(
            "x-backstop-regions",
            HeaderValue::from_str(regions).unwrap(),
        );
    }
    let body =
        Bytes::from_static(br#"{"model":"gpt","messages":[{"role":"user","content":"hi"}]}"#);
    Arc::new(ClientRequest::new(Protocol::OpenAi, headers, body, gateway.config()).unwrap())
}

fn plan(gateway: &Arc<Gateway>, regions: Option<&str>) -> Result<Plan, ApiError> {
    let request = request(gateway, regions);
    let model = request.config.models.get("gpt").unwrap().clone();
    Plan::new(gateway, &request, &model, None)
}

/// The names of `candidates`, each group's sorted (balancing orders a group at random).
fn names(candidates: Vec<Candidate<Route>>) -> Vec<String> {
    let mut candidates: Vec<(Option<usize>, String)> = candidates
        .into_iter()
        .map(|c| (c.group, c.name.to_string()))
        .collect();
    candidates.sort();
    candidates.into_iter().map(|(_, name)| name).collect()
}

#[tokio::test]
async fn fallback_models_are_built_only_when_reached() {
    let gateway = gateway();
    let plan = plan(&gateway, None).unwrap();
    assert!(
        plan.built(1).is_some(),
        "the model asked for is built whole"
    );
    assert!(
        plan.built(2).is_none(),
        "a fallback was built before it was reached"
    );
    let fallback = plan.get(2).unwrap();
    assert_eq!(&*fallback.name, "us/c");
    assert!(fallback.inner.is_fallback);
    assert_eq!(fallback.group, Some(1));
    assert!(
        plan.built(3).is_none(),
        "reaching one fallback built the next"
    );
    assert_eq!(plan.get(3).unwrap().group, Some(2));
    assert!(plan.get(5).is_none());
    assert_eq!(
        names(plan.into_candidates()),
        ["us/a", "us/b", "us/c", "eu/d", "eu/e"].map(String::from)
    );
}

#[tokio::test]
async fn the_plan_after_a_candidate_keeps_the_rest_in_order() {
    let gateway = gateway();
    let plan = plan(&gateway, None).unwrap();
    let second = plan.get(1).unwrap().name.to_string();
    let after_first = plan.after(0);
    assert_eq!(*after_first.built(0).unwrap().name, *second);
    assert!(after_first.built(1).is_none());
    let rest = names(after_first.into_candidates());
    assert_eq!(rest, [second, "us/c".into(), "eu/d".into(), "eu/e".into()]);
    let after_group = plan.after(1);
    assert!(
        after_group.built(0).is_none(),
        "the next group was built by the split"
    );
    assert_eq!(
        names(after_group.into_candidates()),
        ["us/c", "eu/d", "eu/e"]
    );
    plan.get(2).unwrap();
    assert_eq!(
        names(plan.after(1).into_candidates()),
        ["us/c", "eu/d", "eu/e"]
    );
    assert_eq!(names(plan.after(2).into_candidates()), ["eu/d", "eu/e"]);
    assert!(plan.after(4).into_candidates().is_empty());
}

#[tokio::test]
async fn the_region_policy_applies_to_each_group_as_it_is_built() {
    let gateway = gateway();
    let plan = plan(&gateway, Some("eu-*")).unwrap();
    let first = plan
        .built(0)
        .expect("groups are built until one is left in region");
    assert_eq!(first.group, Some(2));
    assert_eq!(plan.into_candidates().len(), 2);
    let error = plan_error(&gateway, Some("ap-*"));
    assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error.message.contains("the region policy left no target"));
    assert!(
        error.message.contains("us/a (us-east-1)") && error.message.contains("eu/e (eu-west-1)")
    );
    assert_eq!(
        plan_error(&gateway, Some(" , ")).status,
        StatusCode::BAD_REQUEST
    );
}

fn plan_error(gateway: &Arc<Gateway>, regions: Option<&str>) -> ApiError {
    match plan(gateway, regions) {
        Ok(_) => panic!("planned in spite of the region policy"),
        Err(error) => error,
    }
}
