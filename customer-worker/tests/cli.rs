//! The worker's process as a deployment starts it: the Go worker's
//! `-conf … -mode all` spelling and the documented `GRPC_ADDR` alias, with
//! every shipped config.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Starts the binary with `args`, waits until its gRPC app channel and its
/// admin port listen (each logs a line), then stops it with SIGTERM and
/// expects a clean exit. Returns what it logged.
fn starts_and_stops(args: &[&str], env: &[(&str, String)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_customer-worker"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let (mut app, mut admin) = (false, false);
    while !(app && admin) {
        let Some(line) = lines.next() else {
            panic!("{args:?} exited before listening ({:?}):\n{log}", child.wait().unwrap())
        };
        let line = line.unwrap();
        app |= line.contains("eventbus server listening");
        admin |= line.contains("admin HTTP listening");
        log.push_str(&line);
        log.push('\n');
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    for line in lines {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    assert!(child.wait().unwrap().success(), "{args:?} did not stop cleanly:\n{log}");
    log
}

fn config(file: &str) -> String {
    format!("{}/configs/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_go_workers_arguments_and_the_grpc_addr_alias_start_the_worker_with_every_shipped_config() {
    let dir = std::env::temp_dir().join(format!("customer_worker_cli_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["config.yaml", "config-dev.yaml", "config-docker.yaml"] {
        let env = [
            ("CUSTOMER_WORKER__DATA__DATABASE__URL", format!("sqlite://{}/{file}.db?mode=rwc", dir.display())),
            // The alias, over a file that sets `app_addr`.
            ("CUSTOMER_WORKER__SERVER__GRPC_ADDR", "127.0.0.1:0".to_owned()),
            ("CUSTOMER_WORKER__SERVER__ADMIN_ADDR", "127.0.0.1:0".to_owned()),
            ("CUSTOMER_WORKER__SERVER__TRANSPORT", "grpc".to_owned()),
            ("CUSTOMER_WORKER__LOG__JSON", "false".to_owned()),
        ];
        let config = config(file);
        let log = starts_and_stops(&["-conf", &config, "-mode", "all"], &env);
        assert!(log.contains("mode=All"), "{file}: {log}");
        let log = starts_and_stops(&["--conf", &config, "--mode", "events"], &env);
        assert!(log.contains("mode=Events"), "{file}: {log}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
