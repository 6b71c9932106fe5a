//! Config loading: the happy path and the exact error messages users see.

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "KEY" => Some("sk-test".into()),
        _ => None,
    }
}

fn error_of(text: &str) -> String {
    match parse(text, &env) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(error) => error.to_string(),
    }
}

const BASE: &str = r#"
[providers.a]
kind = "anthropic"
api_key = "${KEY}"
[providers.o]
kind = "openai"
base_url = "http://127.0.0.1:1/v1/"
"#;

#[test]
fn full_config_is_validated() {
    let text = format!(
        "{BASE}\n[models.smart]\ntargets = [{{ provider = \"a\", model = \"claude\" }}, {{ provider = \"o\", model = \"gpt\", weight = 3 }}]\nfallbacks = [\"fast\"]\ncontext_window = 200000\nprice = {{ input = 3.0, output = 15.0 }}\nbalance = \"least_latency\"\n[models.smart.retry]\nmax_attempts = 5\n[models.fast]\ntargets = [{{ provider = \"o\", model = \"mini\" }}]\n[retry]\nbase_delay = \"100ms\"\n[timeouts]\nfirst_byte = \"2s\"\n"
    );
    let config = parse(&text, &env).unwrap();
    let smart = &config.models["smart"];
    assert_eq!(smart.targets[1].label.as_ref(), "o/gpt");
    assert_eq!(smart.targets[1].weight, 3);
    assert_eq!(smart.retry.max_attempts, 5);
    assert_eq!(
        smart.retry.base_delay,
        std::time::Duration::from_millis(100)
    );
    assert_eq!(config.models["fast"].retry.max_attempts, 3);
    assert_eq!(smart.balance, Balance::LeastLatency);
    assert_eq!(config.providers["o"].base_url, "http://127.0.0.1:1/v1");
    assert_eq!(
        config.providers["a"].api_key.as_ref().map(Secret::expose),
        Some("sk-test")
    );
    assert_eq!(format!("{:?}", config.providers["a"].api_key), "Some(***)");
    assert_eq!(
        config.timeouts.first_byte,
        std::time::Duration::from_secs(2)
    );
    assert!(routing_plan(&config).contains("fallbacks: fast"));
    assert_eq!(
        smart.targets[1].endpoint(false).as_str(),
        "http://127.0.0.1:1/v1/chat/completions"
    );
    assert_eq!(
        smart.targets[0].endpoint(true).as_str(),
        "https://api.anthropic.com/v1/messages"
    );
    assert_eq!(config.server.threads, None);
}

#[test]
fn error_messages_name_the_key() {
    let cases = [
        (
            "[providers.a]\nkind = \"anthropic\"\napi_key = \"${MISSING}\"\n",
            "config error at `providers.a.api_key`: environment variable `MISSING` is not set (export it, or remove the reference)",
        ),
        (
            "lisen = \"127.0.0.1:1\"\n",
            "config error at `lisen`: unknown field `lisen`, expected one of `listen`, `state`, `state_prefix`, `auth`, `providers`, `models`, `retry`, `timeouts`, `circuit_breaker`, `server`, `responses`, `queue`, `tools`, `mcp`, `telemetry`, `guard`, `idempotency`, `keys`, `catalog`, `rate_limit`",
        ),
        (
            "[providers.a]\nkind = \"watsonx\"\n",
            "config error at `providers.a.kind`: unknown provider kind `watsonx`: use \"openai\", \"anthropic\", \"gemini\", \"azure\", \"bedrock\" or \"vertex\"",
        ),
        (
            &format!("{BASE}[models.m]\ntargets = [{{ provider = \"x\", model = \"y\" }}]\n"),
            "config error at `models.m.targets[0].provider`: unknown provider `x` (known: a, o)",
        ),
        (
            &format!("{BASE}[models.m]\ntargets = [{{ provider = \"a\", model = \"y\" }}]\nfallbacks = [\"nope\"]\n"),
            "config error at `models.m.fallbacks[0]`: unknown model `nope` (known: m)",
        ),
        (
            &format!("{BASE}[models.m]\ntargets = [{{ provider = \"a\", model = \"y\" }}]\nfallbacks = [\"n\"]\n[models.n]\ntargets = [{{ provider = \"o\", model = \"z\" }}]\nfallbacks = [\"m\"]\n"),
            "config error at `models.n.fallbacks[0]`: fallback cycle: m -> n -> m",
        ),
        (
            "[timeouts]\nidle = \"30\"\n",
            "config error at `timeouts.idle`: `30` has no unit: write e.g. \"250ms\", \"30s\", \"5m\", or \"auto\" to learn it from the stream",
        ),
        (
            "[timeouts]\nidle_floor = \"40s\"\n",
            "config error at `timeouts.idle_floor`: is longer than timeouts.idle_max: lower it or raise idle_max",
        ),
        (
            &format!("{BASE}[models.m]\ntargets = [{{ provider = \"a\", model = \"y\" }}]\nrescue_restart = \"always\"\n"),
            "config error at `models.m.rescue_restart`: unknown mode `always`: use \"match\" or \"off\"",
        ),
        (
            "[timeouts]\ntotal = \"99999999999999999999s\"\n",
            "config error at `timeouts.total`: `99999999999999999999s` is too long: durations go up to 87600h (10 years)",
        ),
        (
            "[retry]\nmax_attempts = \"three\"\n",
            "config error at `retry.max_attempts`: invalid type: string \"three\", expected u32",
        ),
        (
            "[models.m]\ntargets = [{ provider = \"a\", model = \"y\", wieght = 2 }]\n",
            "config error at `models.m.targets[0].wieght`: unknown field `wieght`, expected one of `provider`, `model`, `catalog`, `weight`",
        ),
        ("state = \"postgres://x\"\n", "config error at `state`: `postgres://x` is not a state store: use \"memory\", \"sqlite:PATH\" or \"redis://HOST:PORT[/DB]\""),
        ("[server]\nthreads = 5000\n", "config error at `server.threads`: must be 0 (one per core) to 1024"),
        ("[providers.o]\nkind = \"openai\"\nbase_url = \"http://\"\n", "config error at `providers.o.base_url`: `http://` is not an http:// or https:// URL"),
        ("[timeouts]\nfirst_byte = \"5m\"\ntotal = \"1m\"\n", "config error at `timeouts.first_byte`: is longer than timeouts.total, so it could never fire: lower it or raise total"),
        (
            &format!("{BASE}[models.m]\ntargets = [{{ provider = \"a\", model = \"y\" }}]\nqueue = \"always\"\n"),
            "config error at `models.m.queue`: unknown mode `always`: use \"off\" or \"on_failure\"",
        ),
        ("[queue]\ncallback_hosts = [\"hooks.example.com\"]\n", "config error at `queue.callback_secret`: is needed with `callback_hosts`: webhook bodies are always signed"),
        ("[queue]\ncallback_hosts = [\"*.example.com\"]\ncallback_secret = \"s\"\n", "config error at `queue.callback_hosts`: `*.example.com` is not a host name (no path, user or wildcard)"),
        ("[queue]\nmax_attempts = 0\n", "config error at `queue.max_attempts`: must be at least 1"),
        ("[queue]\nttl = \"0s\"\n", "config error at `queue.ttl`: must be more than 0"),
    ];
    for (text, expected) in cases {
        assert_eq!(error_of(text), expected, "for config:\n{text}");
    }
    assert_eq!(
        error_of("state = \"memory\"\nlisten = ["),
        "config error: invalid TOML at line 2, column 11 (key `listen`): unclosed array, expected `]`"
    );
}

#[test]
fn zero_config_serves_provider_model_names() {
    let lookup = |name: &str| (name == "ANTHROPIC_API_KEY").then(|| "k".to_string());
    let config = zero_config(&lookup);
    assert!(config.zero_config);
    let model = zero_config_model(&config, "claude-sonnet-4-5").unwrap();
    assert_eq!(
        model.targets[0].label.as_ref(),
        "anthropic/claude-sonnet-4-5"
    );
    assert!(zero_config_model(&config, "gpt-4o").is_none());
}

#[test]
fn the_example_config_documents_a_valid_config() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../backstop.example.toml");
    let config = load(&path).unwrap();
    assert!(config.models.contains_key("smart"));
    assert_eq!(config.models["smart"].fallbacks, vec!["gpt", "fast"]);
}

/// 2,000 models, each falling back to the next two: every path through them would be
/// about 10^418 chains, so only a search that visits each model once can finish.
fn long_chain(models: usize, last_fallback: Option<&str>) -> String {
    let mut text =
        String::from("[providers.o]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n");
    for index in 0..models {
        let fallbacks: Vec<String> = (index + 1..(index + 3).min(models))
            .map(|next| format!("\"m{next}\""))
            .chain(
                last_fallback
                    .filter(|_| index == models - 1)
                    .map(|f| format!("\"{f}\"")),
            )
            .collect();
        text.push_str(&format!(
            "[models.m{index}]\ntargets = [{{ provider = \"o\", model = \"x\" }}]\nfallbacks = [{}]\n",
            fallbacks.join(", ")
        ));
    }
    text
}

#[test]
fn the_fallback_cycle_check_is_linear_in_long_chains() {
    let config = parse(&long_chain(2_000, None), &env).unwrap();
    assert_eq!(config.models.len(), 2_000);
    let error = parse(&long_chain(2_000, Some("m1000")), &env).unwrap_err();
    assert_eq!(error.path, "models.m1999.fallbacks[0]");
    assert!(
        error
            .message
            .starts_with("fallback cycle: m1000 -> m1001 -> ")
            && error.message.ends_with("m1999 -> m1000"),
        "{}",
        error.message.chars().take(200).collect::<String>()
    );
}

#[test]
fn no_error_prints_a_secret_value() {
    let cases = [
        "[providers.a]\nkind = \"openai\"\napi_key = \"sk-live-0123456789\n",
        "[providers.a]\nkind = \"openai\"\napi_key = \"sk-live-0123456789\" x\n",
        "[auth]\nclient_keys = \"sk-live-0123456789\"\n",
        "[auth]\nadmin_key = [\"sk-live-0123456789\"]\n",
        "[providers.a]\nkind = \"openai\"\nheaders = { x-token = 5, y = \"sk-live-0123456789\" }\n",
        "[providers.a]\nkind = \"openai\"\napi_key = \"sk-live-0123456789${\"\n",
        "[providers.a]\nkind = \"openai\"\nbase_url = \"ftp://user:sk-live-0123456789@host/v1\"\n",
    ];
    for text in cases {
        let error = error_of(text);
        assert!(!error.contains("sk-live-0123456789"), "{error}");
    }
}

#[test]
fn the_routing_plan_hides_url_credentials() {
    let text = "[providers.o]\nkind = \"openai\"\nbase_url = \"https://user:pa55word@proxy.example/v1\"\n[models.m]\ntargets = [{ provider = \"o\", model = \"x\" }]\n";
    let plan = routing_plan(&parse(text, &env).unwrap());
    assert!(plan.contains("https://***@proxy.example/v1"), "{plan}");
    assert!(!plan.contains("pa55word"), "{plan}");
}

#[test]
fn stream_and_buffer_limits_take_sizes_or_integers() {
    let model = "[models.m]\ntargets = [{ provider = \"a\", model = \"y\" }]\n";
    let config = parse(&format!("{BASE}{model}"), &env).unwrap();
    assert_eq!(config.models["m"].max_stream_bytes, 64 << 20);
    assert_eq!(config.models["m"].max_rescue_text, 1 << 20);
    assert_eq!(config.server.max_buffered_bytes, 256 << 20);
    let text = format!(
        "{BASE}{model}max_stream_bytes = \"2MB\"\nmax_rescue_text = 4096\n[server]\nmax_buffered_bytes = \"1GiB\"\n"
    );
    let config = parse(&text, &env).unwrap();
    assert_eq!(config.models["m"].max_stream_bytes, 2_000_000);
    assert_eq!(config.models["m"].max_rescue_text, 4096);
    assert_eq!(config.server.max_buffered_bytes, 1 << 30);
    let cases = [
        (
            format!("{BASE}{model}max_stream_bytes = 0\n"),
            "config error at `models.m.max_stream_bytes`: must be at least 1 byte, e.g. \"64MB\"",
        ),
        (
            format!("{BASE}{model}max_rescue_text = \"1 furlong\"\n"),
            "config error at `models.m.max_rescue_text`: unknown size unit `furlong` in `1 furlong`",
        ),
        (
            "[server]\nmax_buffered_bytes = -5\n".to_string(),
            "config error at `server.max_buffered_bytes`: -5 is not a size: it must not be negative",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error_of(&text), expected, "for config:\n{text}");
    }
}

#[test]
fn embeddings_fall_back_only_within_their_space() {
    let models = |second_space: &str| {
        format!(
            "{BASE}[models.e1]\ntargets = [{{ provider = \"o\", model = \"text-embedding-3-small\" }}]\nembedding_space = \"small\"\nfallbacks = [\"e2\"]\n[models.e2]\ntargets = [{{ provider = \"o\", model = \"other\" }}]\n{second_space}"
        )
    };
    assert!(parse(&models("embedding_space = \"small\"\n"), &env).is_ok());
    let error = error_of(&models("embedding_space = \"large\"\n"));
    assert!(
        error.starts_with("config error at `models.e1.fallbacks[0]`: `e1` (embedding_space `small`) cannot fall back to `e2` (embedding_space `large`)"),
        "{error}"
    );
    let error = error_of(&models(""));
    assert!(error.contains("(no embedding_space)"), "{error}");
    let error = error_of(&format!(
        "{BASE}[models.e]\ntargets = [{{ provider = \"o\", model = \"x\" }}]\nembedding_space = \"\"\n"
    ));
    assert!(error.contains("models.e.embedding_space"), "{error}");
}

#[test]
fn the_responses_section_is_read_and_checked() {
    let config = parse(
        &format!("{BASE}[responses]\nttl = \"1h\"\nmax_bytes = \"1MB\"\n"),
        &env,
    )
    .unwrap();
    assert_eq!(config.responses.ttl, std::time::Duration::from_secs(3600));
    assert_eq!(config.responses.max_bytes, 1_000_000);
    let error = error_of(&format!("{BASE}[responses]\nttl = \"0s\"\n"));
    assert!(error.contains("responses.ttl"), "{error}");
    let error = error_of(&format!("{BASE}[responses]\nkeep = 1\n"));
    assert!(error.contains("responses.keep"), "{error}");
}

#[test]
fn telemetry_is_off_by_default_and_checked_when_on() {
    let model = "[models.m]\ntargets = [{ provider = \"o\", model = \"x\" }]\n";
    let off = parse(&format!("{BASE}{model}"), &env).unwrap();
    assert!(off.telemetry.is_none());
    let on = parse(
        &format!("{BASE}{model}[telemetry]\notlp_endpoint = \"http://collector:4318\"\nsample_ratio = 0.25\nresource = {{ \"deployment.environment\" = \"prod\" }}\n"),
        &env,
    )
    .unwrap();
    let telemetry = on.telemetry.unwrap();
    assert_eq!(telemetry.traces_url(), "http://collector:4318/v1/traces");
    assert_eq!(telemetry.service_name, "backstop");
    assert_eq!(telemetry.sample_ratio, 0.25);
    assert_eq!(telemetry.resource["deployment.environment"], "prod");
    let error = error_of(&format!(
        "{BASE}{model}[telemetry]\notlp_endpoint = \"collector:4318\"\n"
    ));
    assert!(error.contains("telemetry.otlp_endpoint"), "{error}");
    let error = error_of(&format!(
        "{BASE}{model}[telemetry]\notlp_endpoint = \"http://c:4318\"\nsample_ratio = 1.5\n"
    ));
    assert!(error.contains("telemetry.sample_ratio"), "{error}");
    let error = error_of(&format!(
        "{BASE}{model}[telemetry]\notlp_endpoint = \"http://c:4318\"\nsample_rate = 0.5\n"
    ));
    assert!(error.contains("sample_rate"), "{error}");
}

#[test]
fn a_provider_says_whether_it_speaks_the_responses_api() {
    let config = parse(
        &format!("{BASE}[providers.official]\nkind = \"openai\"\n[providers.compatible]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nresponses = true\n"),
        &env,
    )
    .unwrap();
    let plan = routing_plan(&parse(
        &format!("{BASE}[models.m]\ntargets = [{{ provider = \"o\", model = \"x\" }}]\n[providers.o2]\nkind = \"openai\"\nresponses = true\nbase_url = \"http://127.0.0.1:2/v1\"\n[models.n]\ntargets = [{{ provider = \"o2\", model = \"y\" }}]\n"),
        &env,
    )
    .unwrap());
    assert_eq!(
        plan.matches("Responses API requests forwarded to http://127.0.0.1:2/v1/responses")
            .count(),
        1,
        "{plan}"
    );
    let speaks = |name: &str| config.providers[name].responses;
    assert!(speaks("official") && speaks("compatible"));
    assert!(!speaks("o") && !speaks("a"));
    let error = error_of(&BASE.replace(
        "kind = \"anthropic\"",
        "kind = \"anthropic\"\nresponses = true",
    ));
    assert!(
        error.starts_with("config error at `providers.a.responses`"),
        "{error}"
    );
}
