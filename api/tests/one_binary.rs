//! "One binary means one binary" (issue 17): `parlo serve` started from an empty directory
//! serves the published widget built into it; a `PARLO_DIST_DIR` without bundles stops
//! start-up with a clear message; misspelled `PARLO_*` variables are reported (and refused in
//! production); the shipped systemd unit passes `systemd-analyze verify`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use support::{BIN, Server, parlo};

/// A GET returning the status, the head and the body's bytes (a WASM body is not UTF-8).
fn get_bytes(url: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let u = url::Url::parse(url).unwrap();
    let mut s = std::net::TcpStream::connect((u.host_str().unwrap(), u.port().unwrap())).unwrap();
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        u.path(),
        u.host_str().unwrap()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, resp[split + 4..].to_vec())
}

fn sha384_b64(bytes: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(bytes))
}

#[test]
fn started_from_an_empty_directory_it_serves_the_built_in_widget() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let server = Server::start(parlo(dir.path()));
    let (status, _, manifest) = get_bytes(&format!("{}/widget/versions.json", server.url), &[]);
    assert_eq!(status, 200);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let latest = manifest["latest"].as_str().unwrap().to_owned();
    let files = manifest["versions"][&latest]["files"].as_object().unwrap();

    // The rolling loader and the pinned one are the latest release's widget.js.
    let (status, head, loader) = get_bytes(&format!("{}/widget.js", server.url), &[]);
    assert_eq!(status, 200, "{head}");
    assert!(head.to_lowercase().contains("text/javascript"), "{head}");
    let integrity = files["widget.js"]["integrity"].as_str().unwrap();
    assert_eq!(format!("sha384-{}", sha384_b64(&loader)), integrity);
    let (status, _, pinned) = get_bytes(&format!("{}/widget/v{latest}.js", server.url), &[]);
    assert_eq!(status, 200);
    assert_eq!(pinned, loader);

    // Every file of the versioned bundle, byte for byte as published (SRI holds).
    for (name, file) in files {
        let (status, head, body) =
            get_bytes(&format!("{}/widget/v{latest}/{name}", server.url), &[]);
        assert_eq!(status, 200, "{name}: {head}");
        assert_eq!(
            format!("sha384-{}", sha384_b64(&body)),
            file["integrity"].as_str().unwrap(),
            "{name}"
        );
    }
    // And a precompressed sibling when the client accepts it.
    let (status, head, _) = get_bytes(
        &format!("{}/widget/v{latest}/widget.js", server.url),
        &[("Accept-Encoding", "br")],
    );
    assert_eq!(status, 200);
    assert!(
        head.to_lowercase().contains("content-encoding: br"),
        "{head}"
    );
    server.stop();
    // Nothing was read from the working directory: only the database and keys were written.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["data"]);
}

#[test]
fn a_dist_dir_without_bundles_stops_start_up_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = parlo(dir.path())
        .env("PARLO_DIST_DIR", empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no published widget"), "{err}");
    assert!(err.contains("manifest.json"), "{err}");
    assert!(err.contains("PARLO_DIST_DIR"), "{err}");
}

#[test]
fn a_misspelled_variable_is_named_with_the_nearest_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = parlo(dir.path())
        .env("PARLO_RETENTION_INTERVAL_SEC", "60")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Everything it says before it is serving (development only warns, then serves).
    let mut err = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let serving = line.starts_with("parlo: serving on ");
        err.push_str(&line);
        err.push('\n');
        if serving {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(err.contains("parlo: serving on "), "{err}");
    assert!(
        err.contains(
            "unknown environment variable(s) PARLO_RETENTION_INTERVAL_SEC \
             (did you mean PARLO_RETENTION_INTERVAL_SECS?)"
        ),
        "{err}"
    );
}

#[test]
fn production_refuses_a_misspelled_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = parlo(dir.path())
        .env("PARLO_ENV", "production")
        .env("PARLO_PUBLIC_URL", "https://chat.example.com")
        .env(
            "PARLO_MASTER_KEYS",
            "1:bWFzdGVyLWtleS1mb3ItcmVkYWN0aW9uLXRlc3QtMDE=",
        )
        .env(
            "PARLO_TOKEN_KEYS",
            "k9:dG9rZW4ta2V5LWZvci1yZWRhY3Rpb24tdGVzdC0wMTI=",
        )
        .env("PARLO_BACKUP_RECIPENTS", "age1xyz")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PARLO_BACKUP_RECIPENTS (did you mean PARLO_BACKUP_RECIPIENTS?)"),
        "{err}"
    );
    assert!(err.contains("refusing to start"), "{err}");
}

/// The units of `deploy/` as shipped, with the binary's path pointed at this build (verify
/// checks that executables exist), pass `systemd-analyze verify` without a single complaint
/// (an unknown or misspelled key is only a warning there, so any line about them fails).
#[test]
fn the_systemd_units_verify() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let main = std::fs::read_to_string(root.join("deploy/parlo.service")).unwrap();
    assert!(
        main.contains("ExecStart=/usr/local/bin/parlo serve"),
        "{main}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for name in [
        "parlo.service",
        "parlo-backup.service",
        "parlo-backup.timer",
        "parlo-drill.service",
        "parlo-drill.timer",
    ] {
        let text = std::fs::read_to_string(root.join("deploy").join(name)).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace("/usr/local/bin/parlo", BIN)).unwrap();
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/test installs it)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("parlo")).collect();
    assert!(ours.is_empty(), "systemd-analyze complains:\n{err}");
}
