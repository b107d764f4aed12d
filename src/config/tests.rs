//! The tests of the configuration: docs/reference.md §1–2 as the module implements it. Most cases are
//! files in `fixtures/config/` (see its README).

use super::*;

fn fixture(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/config")).join(rel)
}

fn fixture_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture(dir))
        .expect("fixture dir exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn load(rel: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::load_with_env(Some(&fixture(rel)), vars)
}

fn full() -> Config {
    load("good/full.toml", &[]).expect("full.toml loads")
}

/// A key's value as `check-config` writes it (`"10s"`, `true`), secrets masked.
fn value_of(c: &Config, key: &str) -> String {
    let text = c.render_effective();
    text[span(&text, key, false).expect(key)].to_string()
}

#[test]
fn defaults_are_the_embedded_file() {
    let (defaults, parse) = (Config::default(), Config::from_toml_str);
    assert_eq!(parse(DEFAULT_TOML).expect("parses"), defaults);
    assert_eq!(parse("").expect("parses"), defaults);
    defaults.validate().expect("defaults are valid");
    assert!(defaults.listen_is_loopback() && defaults.token_required_error().is_none());
}

#[test]
fn every_key_is_documented_in_the_default_file() {
    for line in DEFAULT_TOML.lines().map(str::trim) {
        let skip = line.is_empty() || line.starts_with('#') || line.starts_with('[');
        assert!(skip || line.contains(" # "), "no comment on: {line}");
    }
    // The [[tail]] block ships commented out; uncommented, it parses to the defaults that an
    // entry without start_at/max_line gets.
    let block: String = DEFAULT_TOML
        .lines()
        .skip_while(|l| !l.starts_with("# [[tail]]"))
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_start_matches('#')))
        .collect();
    let tail = TailConfig {
        path: "/var/log/sanplex/actions/*.ndjson".into(),
        start_at: TAIL_DEFAULT_START_AT,
        max_line: TAIL_DEFAULT_MAX_LINE,
    };
    let parsed = Config::from_toml_str(&block).expect("uncommented block parses");
    assert_eq!(parsed.tail, vec![tail.clone()]);
    let bare = Config::from_toml_str(&format!("[[tail]]\npath = {:?}\n", tail.path));
    assert_eq!(bare.expect("parses").tail, vec![tail]);
    // Every key of a Config, a tail entry's included, has a line in config.toml.
    let text = full().render_effective();
    for (key, _) in text.lines().filter_map(|l| l.split_once(" = ")) {
        let documented = |l: &str| l.trim_start_matches("# ").starts_with(&format!("{key} ="));
        assert!(
            DEFAULT_TOML.lines().any(documented),
            "{key} not in config.toml"
        );
    }
}

#[test]
fn good_fixtures_load_and_check_config_shows_them() {
    // effective/empty.toml is docs/reference.md §2, the defaults, as check-config writes them.
    let files = fixture_files("good");
    assert!(files.len() >= 3, "good fixtures present");
    for file in files {
        let c = Config::load_with_env(Some(&file), Vec::new());
        let c = c.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.file_name().expect("a file name");
        let shown = std::fs::read_to_string(fixture("effective").join(name)).expect("effective/");
        assert_eq!(c.render_effective(), shown, "{}", file.display());
    }
    // What the masked rendering of full.toml hides is read as written.
    let c = full();
    let secrets = [
        &c.server.token,
        &c.delivery.proxy,
        &c.cluster.nats,
        &c.sanplex_db.url,
    ];
    #[rustfmt::skip]
    assert_eq!(secrets, ["s3cret-token", "http://squid:pr0xy-pw@proxy.internal:3128",
        "nats://sanhook:n4ts-pw@10.0.0.5:4222,nats://10.0.0.6:4222", "mysql://reader:p@ss:w0rd@db.internal:3306/zentao"]);
}

#[test]
fn bad_fixtures_fail_naming_their_key() {
    let files = fixture_files("bad");
    assert!(files.len() >= 20, "bad fixtures present");
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).expect("readable fixture");
        assert!(text.starts_with("# expect-key: "), "{name}: no expect-key");
        let err = Config::load_with_env(Some(&file), Vec::new()).expect_err(&name);
        let msg = err.to_string();
        // The `# expect-*: ` header (see the README), each line a check of the error.
        let header = text
            .lines()
            .map_while(|l| l.strip_prefix("# expect-")?.split_once(": "));
        let failed: Vec<_> = header
            .filter(|&(what, v)| match what {
                "key" if v == "-" => err.key().is_some() || !msg.contains("TOML syntax error"),
                "key" => err.key() != Some(v) || !msg.contains(&format!("`{v}`")),
                "line" => err.line() != v.parse().ok() || !msg.contains(&format!("line {v},")),
                "text" => !msg.contains(v),
                "no-text" => msg.contains(v),
                _ => true,
            })
            .collect();
        assert!(failed.is_empty(), "{name}: {msg:?} fails {failed:?}");
        assert!(err.line().is_none() || msg.contains(&name), "{name}: {msg}");
    }
}

#[test]
fn unreadable_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An explicit file that does not exist is an error; the implicit ./config.toml may be absent.
    let missing = Config::load_with_env(Some(&dir.path().join("nope.toml")), Vec::new());
    let msg = missing.expect_err("missing").to_string();
    assert!(msg.contains("nope.toml: No such file"), "{msg}");
    // A directory is not a readable file: reported, not treated as absent.
    let err = Config::load_with_env(Some(dir.path()), Vec::new()).expect_err("a directory");
    assert!(err.to_string().contains("cannot read config file"), "{err}");
}

#[test]
#[rustfmt::skip]
fn env_overrides() {
    // (variable, value, the key it is about ("": none), Ok(the key's value as check-config
    // shows it) or Err(what the error, which names the variable, says))
    let cases: &[(&str, &str, &str, Result<&str, &str>)] = &[
        ("SANHOOK_SERVER_LISTEN", "127.0.0.1:9999", "server.listen", Ok("\"127.0.0.1:9999\"")),
        ("SANHOOK_SERVER_TOKEN", "12345", "server.token", Ok("\"******\"")),
        ("SANHOOK_SERVER_MAX_BODY", "1MiB", "server.max_body", Ok("\"1MiB\"")),
        ("SANHOOK_SERVER_MAX_BODY", "2048", "server.max_body", Ok("\"2KiB\"")),
        ("SANHOOK_SERVER_MAX_EVENTS", " 7 ", "server.max_events", Ok("7")),
        ("SANHOOK_STORAGE_PATH", "/tmp/x.redb", "storage.path", Ok("\"/tmp/x.redb\"")),
        ("SANHOOK_DELIVERY_TIMEOUT", "3s", "delivery.timeout", Ok("\"3s\"")),
        ("SANHOOK_DELIVERY_ALLOW_PRIVATE", "1", "delivery.allow_private", Ok("true")),
        ("SANHOOK_DELIVERY_ALLOW_PRIVATE", "TRUE", "delivery.allow_private", Ok("true")),
        ("SANHOOK_DELIVERY_ALLOW_LINK_LOCAL", "0", "delivery.allow_link_local", Ok("false")),
        ("SANHOOK_DELIVERY_ALLOW_LINK_LOCAL", "false", "delivery.allow_link_local", Ok("false")),
        ("SANHOOK_SANPLEX_LANG", "en", "sanplex.lang", Ok("\"en\"")),
        ("SANHOOK_LIMITS_DINGTALK_THROTTLE", "1m", "limits.dingtalk_throttle", Ok("\"1m\"")),
        ("SANHOOK_PLATFORMS_FEISHU", "http://127.0.0.1:1", "platforms.feishu", Ok("\"http://127.0.0.1:1\"")),
        ("SANHOOK_CLUSTER_NATS", "nats://127.0.0.1:4222", "cluster.nats", Ok("\"nats://127.0.0.1:4222\"")),
        ("SANHOOK_CLUSTER_SHARDS", "8", "cluster.shards", Ok("8")),
        ("SANHOOK_CLUSTER_NODE_ID", "42", "cluster.node_id", Ok("\"42\"")),
        // The longest section wins: sanplex_db.url, never sanplex.db_url.
        ("SANHOOK_SANPLEX_DB_URL", "mysql://u:p@h/db", "sanplex_db.url", Ok("\"mysql://u:******@h/db\"")),
        ("SANHOOK_SANPLEX_DB_START_AT", "end", "sanplex_db.start_at", Ok("\"end\"")),
        ("SANHOOK_SANPLEX_BASE_URL", "https://pms.example.com", "sanplex.base_url", Ok("\"https://pms.example.com\"")),
        ("SANHOOK_SERVER_LISEN", "x", "server.lisen", Err("expected one of `listen`")),
        ("SANHOOK_SERVER_listen", "x", "", Err("upper case")),
        ("SANHOOK_DELIVERY_RETRY_SCHEDULE", "5s", "delivery.retry_schedule", Err("file only")),
        ("SANHOOK_LIMITS_DINGGROUP", "1/1s", "limits.dinggroup", Err("file only")),
        ("SANHOOK_TAIL_PATH", "x", "tail.path", Err("file only")),
        ("SANHOOK_DELIVERY_TIMEOUT", "10", "delivery.timeout", Err("\"10s\"")),
        ("SANHOOK_DELIVERY_ALLOW_PRIVATE", "yes", "delivery.allow_private", Err("\"yes\"")),
        ("SANHOOK_CLUSTER_SHARDS", "many", "cluster.shards", Err("\"many\"")),
        ("SANHOOK_SERVER_MAX_BODY", "lots", "server.max_body", Err("MiB")),
        ("SANHOOK_SANPLEX_LANG", "de", "sanplex.lang", Err("zh-cn")),
        // A value refused by validate() is traced back to its variable, secrets masked.
        ("SANHOOK_SANPLEX_DB_URL", "postgres://u:hunter2@h/db", "sanplex_db.url", Err("u:******@h")),
    ];
    for (var, value, key, expected) in cases {
        match (load("good/full.toml", &[(var, value), ("PATH", "/usr/bin")]), expected) {
            (Ok(c), Ok(shown)) => assert_eq!(value_of(&c, key), *shown, "{var}={value}"),
            (Err(e), Err(text)) => {
                let msg = e.to_string();
                assert!(msg.contains(var) && msg.contains(text) && !msg.contains("hunter2"), "{msg}");
                assert_eq!(e.key().unwrap_or_default(), *key, "{msg}");
            }
            (got, _) => panic!("{var}={value}: {got:?}"),
        }
    }
    let c = load("good/full.toml", &[("SANHOOK_SERVER_TOKEN", "12345")]).expect("loads");
    assert_eq!(c.server.token, "12345");
    // Untouched keys keep the file's values; what is not an override is ignored.
    let ignored = [("SANHOOK_TEST_FAKE_PORT", "1"), ("SANHOOK_LOG", "debug"), ("SANHOOK_LOG_FORMAT", "json"),
        ("SANHOOK_CONFIG", "/etc/sanhook.toml"), ("NOT_SANHOOK_SERVER_LISTEN", "x"),
        // An unknown section is not an override (docs/reference.md §1): another tool's variable.
        ("SANHOOK_SERVR_LISTEN", "x"), ("SANHOOK_OTHER_TOOL_PORT", "9")];
    assert_eq!(load("good/full.toml", &ignored).expect("loads"), full());
}

#[test]
fn render_effective_round_trips_and_never_shows_secrets() {
    let mut c = full();
    c.sanplex.base_url = "https://pm:base-pw@pms.example.com/zentao".into();
    c.platforms.dingtalk = "https://u:ding-pw@oapi.example.com".into();
    c.platforms.wecom = "https://qy.example.com/?access_token=wecom-tok".into();
    let text = c.render_effective();
    let debug = format!("{c:?} {:?} {:?}", c.server, c.sanplex_db);
    let secrets = [
        "s3cret-token",
        "w0rd",
        "base-pw",
        "ding-pw",
        "wecom-tok",
        "n4ts-pw",
    ];
    for secret in secrets {
        assert!(
            !text.contains(secret) && !debug.contains(secret),
            "{secret}: {text} {debug}"
        );
    }
    let base_url = "base_url = \"https://pm:******@pms.example.com/zentao\"";
    assert!(text.contains(base_url), "{text}");
    assert!(debug.contains("max_in_flight: 32"), "{debug}");
    let back = Config::from_toml_str(&text).expect("masked rendering parses");
    assert_eq!((back.server.token.as_str(), &back.tail), (MASK, &c.tail));
    // Without secrets nothing is masked, so the rendering reads back identically.
    let mut plain = full();
    plain.server.token.clear();
    plain.sanplex_db.url = "mysql://reader@db.internal/zentao".into();
    plain.delivery.proxy = "http://proxy.internal:3128".into();
    plain.cluster.nats = "nats://10.0.0.5:4222,tls://10.0.0.6:4222".into();
    for config in [Config::default(), plain] {
        let text = config.render_effective();
        assert_eq!(
            Config::from_toml_str(&text).expect("parses"),
            config,
            "{text}"
        );
    }
    // A path that is not UTF-8 (an embedder's) is shown, not a panic.
    let mut odd = Config::default();
    let bytes: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(b"/tmp/\xff.redb");
    odd.storage.path = bytes.into();
    let text = odd.render_effective();
    assert!(text.contains("path = \"/tmp/\u{fffd}.redb\""), "{text}");
}

#[test]
#[rustfmt::skip]
fn durations_parse_and_format() {
    let ok: &[(&str, u64, &str)] = &[("500ms", 500, "500ms"), ("10s", 10_000, "10s"), (" 90s ", 90_000, "90s"),
        ("2m", 120_000, "2m"), ("1h", 3_600_000, "1h"), ("30d", 2_592_000_000, "30d"), ("1500ms", 1_500, "1500ms"),
        ("0s", 0, "0s"), ("60s", 60_000, "1m")];
    for (text, ms, rendered) in ok {
        let d = parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!((d, format_duration(d).as_str()), (Duration::from_millis(*ms), *rendered), "{text}");
    }
    for bad in ["10", "", "s", "1.5s", "-1s", "10 sec", "10S", "1w", "18446744073709551615d"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
    }
    assert!(parse_duration("10").expect_err("no unit").contains("\"10s\""));
    // Huge values are accepted up to what every clock they meet can hold, and refused past it.
    for huge in ["182500000d", "106751991167d"] {
        let d = parse_duration(huge).unwrap_or_else(|e| panic!("{huge}: {e}"));
        assert!(std::time::Instant::now().checked_add(d).is_some(), "{huge}");
        let text = format!("[storage]\nretention = \"{huge}\"\n[delivery]\ntimeout = \"{huge}\"\n");
        let c = Config::from_toml_str(&text).expect("parses");
        c.validate().expect("valid");
        assert_eq!(Config::from_toml_str(&c.render_effective()).expect("parses"), c);
    }
    let err = parse_duration("106751991168d").expect_err("too large");
    assert!(err.contains("at most 106751991167d"), "{err}");
}

#[test]
#[rustfmt::skip]
fn sizes_and_windows_parse_and_format() {
    let ok: &[(&str, u64, &str)] = &[("123", 123, "123"), ("123B", 123, "123"), ("1KiB", 1024, "1KiB"),
        ("16MiB", 16 << 20, "16MiB"), ("16 mib", 16 << 20, "16MiB"), ("2GiB", 2 << 30, "2GiB"),
        ("1536KiB", 1536 << 10, "1536KiB"), ("1025", 1025, "1025"), ("0", 0, "0"),
        ("8589934591GiB", 8589934591 << 30, "8589934591GiB")];
    for (text, n, rendered) in ok {
        assert_eq!(text.parse(), Ok(Size(*n)), "{text}");
        assert_eq!(Size(*n).to_string(), *rendered, "{text}");
    }
    for bad in ["16MB", "1.5MiB", "", "MiB", "-1", "99999999999GiB", "8589934592GiB"] {
        assert!(bad.parse::<Size>().is_err(), "{bad:?} accepted");
    }
    let w = |count, secs| Window { count, per: Duration::from_secs(secs) };
    assert_eq!(("20/60s".parse(), " 5 / 1s".parse()), (Ok(w(20, 60)), Ok(w(5, 1))));
    assert_eq!(w(100, 60).to_string(), "100/1m");
    for bad in ["20", "20/60", "/60s", "x/1s", "-1/1s", "20/60s/1"] {
        assert!(bad.parse::<Window>().is_err(), "{bad:?} accepted");
    }
}

#[test]
#[rustfmt::skip]
fn token_is_required_off_loopback() {
    // (listen, token, loopback, refused)
    let cases = [("127.0.0.1:8930", "", true, false), ("[::1]:8930", "", true, false),
        ("0.0.0.0:8930", "", false, true), ("0.0.0.0:8930", "t", false, false),
        ("192.168.1.5:80", "", false, true), ("localhost:8930", "", false, true)];
    for (listen, token, loopback, refused) in cases {
        let mut c = Config::default();
        (c.server.listen, c.server.token) = (listen.into(), token.into());
        assert_eq!(c.listen_is_loopback(), loopback, "{listen}");
        let err = c.token_required_error();
        assert_eq!(err.is_some(), refused, "{listen} {token:?}");
        let msg = err.unwrap_or_default();
        assert!(!refused || msg.contains("server.token") && msg.contains(listen), "{msg}");
    }
}
