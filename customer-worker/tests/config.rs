//! Configuration: files, environment overrides, and errors that name the key.
#![allow(clippy::unwrap_used)]

use customer_worker::config::{Config, DEFAULT_CONFIG, redact};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn shipped_configs_load() {
    for file in ["config.yaml", "config-dev.yaml", "config-docker.yaml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(file);
        let config = Config::load(Some(&path)).unwrap_or_else(|e| panic!("{file}: {e:#}"));
        assert_eq!(config.data.eventbus.default_pubsub, "pubsub-redis", "{file}");
    }
    let default = Config::load(None).unwrap();
    assert_eq!(default.server.app_addr.port(), 5005);
}

#[test]
fn environment_overrides_any_key() {
    let config = Config::parse(
        DEFAULT_CONFIG,
        env(&[
            ("CUSTOMER_WORKER__DATA__DATABASE__URL", "postgres://app:s3cret@db:5432/customer"),
            ("CUSTOMER_WORKER__SERVER__APP_ADDR", "127.0.0.1:6006"),
            ("CUSTOMER_WORKER__JOBS__BATCH_SIZE", "42"),
            ("CUSTOMER_WORKER__LOG__JSON", "true"),
            ("UNRELATED", "x"),
        ]),
        "test",
    )
    .unwrap();
    assert_eq!(config.server.app_addr.port(), 6006);
    assert_eq!(config.jobs.batch_size, 42);
    assert!(config.log.json);
    // The password never reaches logs.
    let shown = format!("{:?}", config.data.database);
    assert!(!shown.contains("s3cret") && shown.contains("postgres://app:***@db:5432/customer"), "{shown}");
}

#[test]
fn mistakes_stop_start_up_naming_the_key() {
    let cases = [
        (DEFAULT_CONFIG.replace("busy_timeout_ms: 5000", "busy_timeout_ms: 5000\n    pool_size: 3"), "pool_size"),
        (DEFAULT_CONFIG.replace("\"*/15 * * * *\"", "\"every 15 minutes\""), "jobs.segments.schedule"),
        (DEFAULT_CONFIG.replace("\"5 0 * * *\"", "\"61 0 * * *\""), "jobs.stats.schedule"),
        (DEFAULT_CONFIG.replace("sqlite://customer-worker.db?mode=rwc", "mysql://u:pw@h/db"), "data.database.url"),
        (DEFAULT_CONFIG.replace("min_total_spent: \"1000.00\"", "min_total_spent: \"lots\""), "min_total_spent"),
    ];
    for (text, key) in cases {
        let error = format!("{:#}", Config::parse(&text, Vec::new(), "test").unwrap_err());
        assert!(error.contains(key), "expected {key:?} in: {error}");
        assert!(!error.contains(":pw@"), "secret in: {error}");
    }
    let error = format!(
        "{:#}",
        Config::parse(DEFAULT_CONFIG, env(&[("CUSTOMER_WORKER__SERVER__NOPE", "1")]), "test").unwrap_err()
    );
    assert!(error.contains("nope"), "{error}");
}

#[test]
fn errors_name_the_line_of_the_file_or_the_environment_variable() {
    let text = DEFAULT_CONFIG.replace("app_addr: \"0.0.0.0:5005\"", "app_addr: \"port five thousand\"");
    let line = text.lines().position(|l| l.contains("port five thousand")).unwrap() + 1;
    let error = format!("{:#}", Config::parse(&text, Vec::new(), "config.yaml").unwrap_err());
    assert!(error.starts_with("config.yaml: server.app_addr: "), "{error}");
    assert!(error.contains(&format!("line {line}")), "expected line {line} in: {error}");

    let env = env(&[("CUSTOMER_WORKER__JOBS__BATCH_SIZE", "many")]);
    let error = format!("{:#}", Config::parse(DEFAULT_CONFIG, env, "config.yaml").unwrap_err());
    assert!(error.starts_with("environment variable CUSTOMER_WORKER__JOBS__BATCH_SIZE (jobs.batch_size): "), "{error}");

    let env = self::env(&[("CUSTOMER_WORKER__SERVER__TRANSPORT", "carrier-pigeon")]);
    let error = format!("{:#}", Config::parse(DEFAULT_CONFIG, env, "config.yaml").unwrap_err());
    assert!(error.contains("CUSTOMER_WORKER__SERVER__TRANSPORT") && error.contains("carrier-pigeon"), "{error}");
}

#[test]
fn redaction() {
    assert_eq!(redact("postgres://u:p@h/db"), "postgres://u:***@h/db");
    assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
}

#[test]
fn every_alias_works_from_the_file_and_from_the_environment() {
    use customer_worker::config::ALIASES;
    for (alias, key) in ALIASES {
        let (_, alias_name) = alias.rsplit_once('.').unwrap();
        let (_, key_name) = key.rsplit_once('.').unwrap();
        let variable = |path: &str| format!("CUSTOMER_WORKER__{}", path.replace('.', "__").to_uppercase());
        assert_eq!(*key, "server.app_addr", "this test reads the value back from server.app_addr");
        let file_by_alias = DEFAULT_CONFIG
            .replace(&format!("  {key_name}: \"0.0.0.0:5005\""), &format!("  {alias_name}: \"0.0.0.0:5005\""));
        assert_ne!(file_by_alias, DEFAULT_CONFIG);
        for (what, text, env) in [
            ("the alias in the file", file_by_alias.as_str(), Vec::new()),
            (
                "the alias from the environment over the key in the file",
                DEFAULT_CONFIG,
                vec![(variable(alias), "127.0.0.1:7007")],
            ),
            (
                "the key from the environment over the alias in the file",
                &file_by_alias,
                vec![(variable(key), "127.0.0.1:7007")],
            ),
            (
                "the alias from the environment over the alias in the file",
                &file_by_alias,
                vec![(variable(alias), "127.0.0.1:7007")],
            ),
        ] {
            let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k, v.to_owned())).collect();
            let expected = if env.is_empty() { 5005 } else { 7007 };
            let config = Config::parse(text, env, "test").unwrap_or_else(|e| panic!("{alias}, {what}: {e:#}"));
            assert_eq!(config.server.app_addr.port(), expected, "{alias}, {what}");
        }
        // Both names in one file: refused, naming both.
        let both = DEFAULT_CONFIG.replace(
            &format!("  {key_name}: \"0.0.0.0:5005\""),
            &format!("  {key_name}: \"0.0.0.0:5005\"\n  {alias_name}: \"0.0.0.0:6006\""),
        );
        let error = format!("{:#}", Config::parse(&both, Vec::new(), "test").unwrap_err());
        assert!(error.contains(alias) && error.contains(key), "{error}");
    }
}

/// Trace export settings: the file's `telemetry` keys, each overridden by
/// its OpenTelemetry variable; one case per source.
mod telemetry {
    use super::*;
    use customer_worker::telemetry::Settings;
    use std::collections::BTreeMap;

    fn settings(file: &str, vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let text = DEFAULT_CONFIG.replace("  otlp_endpoint: null\n", file);
        let config = Config::parse(&text, Vec::new(), "test").unwrap();
        let vars: BTreeMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::resolve(&config.telemetry, |name| vars.get(name).cloned())
    }

    const FILE: &str = "  otlp_endpoint: http://collector-from-file:4317\n  service_name: from-file\n  resource_attributes:\n    deployment.environment.name: staging\n    team: orders\n  sampler: traceidratio\n  sampler_arg: 0.25\n";

    #[test]
    fn defaults_export_nothing() {
        let settings = settings("  otlp_endpoint: null\n", &[]).unwrap();
        assert_eq!(settings.endpoint, None);
        assert_eq!(settings.service_name, "customer-worker");
        assert_eq!(settings.sampler, "parentbased_always_on");
        assert!(settings.resource_attributes.is_empty());
    }

    #[test]
    fn the_config_file_sets_every_key() {
        let settings = settings(FILE, &[]).unwrap();
        assert_eq!(settings.endpoint.as_deref(), Some("http://collector-from-file:4317"));
        assert_eq!(settings.service_name, "from-file");
        assert_eq!(settings.resource_attributes["deployment.environment.name"], "staging");
        assert_eq!((settings.sampler.as_str(), settings.sampler_arg), ("traceidratio", Some(0.25)));
    }

    #[test]
    fn the_otel_variables_override_the_file() {
        let settings = settings(
            FILE,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector-from-env:4317"),
                ("OTEL_SERVICE_NAME", "from-env"),
                ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=production,k8s.pod.name=worker-0"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ],
        )
        .unwrap();
        assert_eq!(settings.endpoint.as_deref(), Some("http://collector-from-env:4317"));
        assert_eq!(settings.service_name, "from-env");
        let attributes: Vec<(&str, &str)> =
            settings.resource_attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            attributes,
            [("deployment.environment.name", "production"), ("k8s.pod.name", "worker-0"), ("team", "orders")]
        );
        assert_eq!((settings.sampler.as_str(), settings.sampler_arg), ("parentbased_traceidratio", Some(0.5)));
    }

    #[test]
    fn the_traces_endpoint_beats_the_generic_one_and_export_can_be_switched_off() {
        let both = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
        ];
        assert_eq!(settings(FILE, &both).unwrap().endpoint.as_deref(), Some("http://traces:4317"));
        assert_eq!(settings(FILE, &[("OTEL_SDK_DISABLED", "true")]).unwrap().endpoint, None);
        assert_eq!(settings(FILE, &[("OTEL_TRACES_EXPORTER", "none")]).unwrap().endpoint, None);
        let named =
            settings("  otlp_endpoint: null\n", &[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")]);
        assert_eq!(named.unwrap().service_name, "from-attributes");
    }

    #[test]
    fn a_bad_variable_stops_start_up_naming_it() {
        for (name, value, expected) in [
            ("OTEL_TRACES_SAMPLER", "sometimes", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "half", "OTEL_TRACES_SAMPLER_ARG"),
            ("OTEL_RESOURCE_ATTRIBUTES", "no-equals-sign", "OTEL_RESOURCE_ATTRIBUTES"),
        ] {
            let error = format!("{:#}", settings(FILE, &[(name, value)]).unwrap_err());
            assert!(error.contains(expected), "{name}: {error}");
        }
    }
}
