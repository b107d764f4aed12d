//! The tests of the configuration: docs/reference.md §1–2 as the module implements it.

use super::*;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/config")
        .join(rel)
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

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn w(count: u32, per: Duration) -> Window {
    Window { count, per }
}

/// docs/reference.md §2, written out by hand so that a wrong default in config.toml fails here.
fn contract_defaults() -> Config {
    Config {
        server: ServerConfig {
            listen: "127.0.0.1:8930".into(),
            token: String::new(),
            max_body: 16 * 1024 * 1024,
            max_events: 20_000,
        },
        storage: StorageConfig {
            path: PathBuf::from("data/sanhook.redb"),
            retention: secs(30 * 86_400),
        },
        sanplex: SanplexConfig {
            base_url: "http://localhost".into(),
            lang: Lang::En,
        },
        delivery: DeliveryConfig {
            timeout: secs(10),
            async_interval: secs(60),
            retry_schedule: vec![
                secs(5),
                secs(30),
                secs(120),
                secs(600),
                secs(1800),
                secs(3600),
                secs(3 * 3600),
                secs(6 * 3600),
            ],
            max_retry_after: secs(3600),
            allow_private: true,
            allow_link_local: false,
            proxy: String::new(),
            workers: 0,
            max_in_flight: 64,
            disable_after: secs(5 * 86_400),
            failing_after: secs(3600),
        },
        limits: LimitsConfig {
            dinggroup: vec![w(20, secs(60))],
            wechatgroup: vec![w(20, secs(60))],
            feishugroup: vec![w(5, secs(1)), w(100, secs(60))],
            wechatuser_member: vec![w(30, secs(60))],
            dingtalk_throttle: secs(600),
        },
        platforms: PlatformsConfig {
            dingtalk: "https://oapi.dingtalk.com".into(),
            wecom: "https://qyapi.weixin.qq.com".into(),
            feishu: "https://open.feishu.cn".into(),
        },
        tail: Vec::new(),
        cluster: ClusterConfig {
            nats: String::new(),
            name: "sanhook".into(),
            node_id: String::new(),
            shards: 64,
            lease: secs(10),
        },
        sanplex_db: SanplexDbConfig {
            url: String::new(),
            poll_interval: secs(1),
            start_at: StartAt::End,
            gap_grace: secs(300),
        },
    }
}

#[test]
fn defaults_equal_the_contract() {
    assert_eq!(Config::default(), contract_defaults());
}

#[test]
fn embedded_file_parses_to_defaults_and_is_valid() {
    assert_eq!(
        Config::from_toml_str(DEFAULT_TOML).expect("parses"),
        contract_defaults()
    );
    let defaults = Config::default();
    defaults.validate().expect("defaults are valid");
    assert!(defaults.listen_is_loopback());
    assert_eq!(defaults.token_required_error(), None);
}

#[test]
fn every_default_key_has_a_one_line_comment() {
    for line in DEFAULT_TOML.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        assert!(line.contains(" # "), "no comment on: {line}");
    }
}

#[test]
fn commented_tail_block_matches_tail_defaults() {
    // The [[tail]] block ships commented out; uncommented, it must parse and document the
    // same defaults that an entry without start_at/max_line gets.
    let block: String = DEFAULT_TOML
        .lines()
        .skip_while(|l| !l.starts_with("# [[tail]]"))
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_start_matches('#')))
        .collect();
    assert!(block.contains("[[tail]]"), "the commented block is there");
    let config = Config::from_toml_str(&block).expect("uncommented block parses");
    assert_eq!(
        config.tail,
        vec![TailConfig {
            path: "/var/log/sanplex/actions/*.ndjson".into(),
            start_at: TAIL_DEFAULT_START_AT,
            max_line: TAIL_DEFAULT_MAX_LINE,
        }]
    );
    let bare = Config::from_toml_str("[[tail]]\npath = \"x\"\n").expect("parses");
    assert_eq!(bare.tail[0].start_at, TAIL_DEFAULT_START_AT);
    assert_eq!(bare.tail[0].max_line, TAIL_DEFAULT_MAX_LINE);
}

#[test]
fn every_key_appears_in_the_default_file() {
    // Every section and key of a Config (tail entries included) is documented in config.toml.
    let mut config = Config::default();
    config.tail.push(TailConfig {
        path: "x".into(),
        start_at: StartAt::End,
        max_line: 1,
    });
    for (section, value) in config.to_table() {
        let keys = match value {
            Value::Table(keys) => {
                let header = format!("[{section}]");
                assert!(
                    DEFAULT_TOML.contains(&header),
                    "{header} missing from config.toml"
                );
                keys
            }
            Value::Array(mut tails) => match tails.pop() {
                Some(Value::Table(keys)) => keys,
                other => panic!("tail: {other:?}"),
            },
            other => panic!("{section} = {other}"),
        };
        for key in keys.keys() {
            let documented = |l: &str| l.trim_start_matches("# ").starts_with(&format!("{key} ="));
            assert!(
                DEFAULT_TOML.lines().any(documented),
                "{section}.{key} missing from config.toml"
            );
        }
    }
}

#[test]
fn good_fixtures_load_and_validate() {
    let files = fixture_files("good");
    assert!(files.len() >= 3, "good fixtures present");
    for file in files {
        let loaded = Config::load_with_env(Some(&file), no_env());
        assert!(loaded.is_ok(), "{}: {:?}", file.display(), loaded.err());
    }
}

#[test]
fn full_fixture_overrides_every_key() {
    let c = Config::load_with_env(Some(&fixture("good/full.toml")), no_env()).expect("loads");
    let expected = Config {
        server: ServerConfig {
            listen: "0.0.0.0:9000".into(),
            token: "s3cret-token".into(),
            max_body: 2 * 1024 * 1024,
            max_events: 5000,
        },
        storage: StorageConfig {
            path: PathBuf::from("/var/lib/sanhook/db.redb"),
            retention: secs(7 * 86_400),
        },
        sanplex: SanplexConfig {
            base_url: "https://pms.example.com/zentao".into(),
            lang: Lang::ZhCn,
        },
        delivery: DeliveryConfig {
            timeout: Duration::from_millis(2500),
            async_interval: secs(300),
            retry_schedule: vec![secs(1), secs(90), secs(7200)],
            max_retry_after: secs(1800),
            allow_private: false,
            allow_link_local: true,
            proxy: "http://squid:pr0xy-pw@proxy.internal:3128".into(),
            workers: 3,
            max_in_flight: 32,
            disable_after: Duration::ZERO,
            failing_after: secs(1800),
        },
        limits: LimitsConfig {
            dinggroup: vec![w(10, secs(60)), w(100, secs(3600))],
            wechatgroup: vec![w(15, secs(60))],
            feishugroup: vec![],
            wechatuser_member: vec![w(1, secs(1))],
            dingtalk_throttle: secs(900),
        },
        platforms: PlatformsConfig {
            dingtalk: "http://127.0.0.1:18001".into(),
            wecom: "http://127.0.0.1:18002/wecom".into(),
            feishu: "https://open.larksuite.com".into(),
        },
        tail: vec![
            TailConfig {
                path: "/var/log/sanplex/actions/*.ndjson".into(),
                start_at: StartAt::Beginning,
                max_line: 1024 * 1024,
            },
            TailConfig {
                path: "/srv/other/*.log".into(),
                start_at: StartAt::End,
                max_line: 65536,
            },
        ],
        cluster: ClusterConfig {
            nats: "nats://sanhook:n4ts-pw@10.0.0.5:4222,nats://10.0.0.6:4222".into(),
            name: "billing-hooks".into(),
            node_id: "node_2".into(),
            shards: 16,
            lease: secs(30),
        },
        sanplex_db: SanplexDbConfig {
            url: "mysql://reader:p@ss:w0rd@db.internal:3306/zentao".into(),
            poll_interval: Duration::from_millis(250),
            start_at: StartAt::Beginning,
            gap_grace: secs(3600),
        },
    };
    assert_eq!(c, expected);
}

#[test]
fn partial_files_keep_other_defaults() {
    let c = Config::load_with_env(Some(&fixture("good/minimal.toml")), no_env()).expect("ok");
    let mut expected = Config::default();
    expected.server.listen = "127.0.0.1:9100".into();
    assert_eq!(c, expected);

    let c = Config::load_with_env(Some(&fixture("good/inline.toml")), no_env()).expect("ok");
    assert_eq!(c.server.listen, "[::1]:8930");
    assert_eq!(c.server.max_body, 1024 * 1024);
    assert_eq!(c.delivery.timeout, secs(30));
    assert_eq!(c.tail.len(), 1);
    assert_eq!(c.tail[0].max_line, 64 * 1024);
    assert_eq!(c.limits, Config::default().limits);
}

/// Reads the `# expect-*:` header of a bad fixture.
fn expectations(text: &str) -> (String, Option<usize>, Vec<String>, Vec<String>) {
    let (mut key, mut line, mut has, mut hasnt) = (None, None, Vec::new(), Vec::new());
    for l in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(v) = l.strip_prefix("# expect-key: ") {
            key = Some(v.trim().to_string());
        } else if let Some(v) = l.strip_prefix("# expect-line: ") {
            line = Some(v.trim().parse().expect("expect-line is a number"));
        } else if let Some(v) = l.strip_prefix("# expect-text: ") {
            has.push(v.trim().to_string());
        } else if let Some(v) = l.strip_prefix("# expect-no-text: ") {
            hasnt.push(v.trim().to_string());
        }
    }
    (
        key.expect("every bad fixture has expect-key"),
        line,
        has,
        hasnt,
    )
}

#[test]
fn bad_fixtures_fail_naming_their_key() {
    let files = fixture_files("bad");
    assert!(files.len() >= 20, "bad fixtures present");
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).expect("readable fixture");
        let (key, line, has, hasnt) = expectations(&text);
        let err = match Config::load_with_env(Some(&file), no_env()) {
            Ok(_) => panic!("{name}: loaded, but it should fail on {key}"),
            Err(e) => e,
        };
        let msg = err.to_string();
        if key == "-" {
            assert!(matches!(err, ConfigError::Syntax { .. }), "{name}: {msg}");
        } else {
            assert_eq!(err.key(), Some(key.as_str()), "{name}: {msg}");
            assert!(msg.contains(&format!("`{key}`")), "{name}: {msg}");
        }
        if let Some(line) = line {
            assert_eq!(err.line(), Some(line), "{name}: {msg}");
            assert!(msg.contains(&format!("line {line}")), "{name}: {msg}");
        }
        if err.line().is_some() {
            assert!(msg.contains(&name), "{name}: message names the file: {msg}");
        }
        for t in has {
            assert!(msg.contains(&t), "{name}: {msg:?} lacks {t:?}");
        }
        for t in hasnt {
            assert!(!msg.contains(&t), "{name}: {msg:?} leaks {t:?}");
        }
    }
}

#[test]
fn invalid_value_message_says_value_and_what_to_write() {
    let err = Config::from_toml_str("[delivery]\ntimeout = 10\n").expect_err("no unit");
    let msg = err.to_string();
    assert!(msg.contains("`delivery.timeout`"), "{msg}");
    assert!(msg.contains(": 10:"), "{msg}");
    assert!(msg.contains("\"10s\""), "{msg}");
    assert!(msg.contains("line 2, column 11"), "{msg}");
}

#[test]
fn syntax_error_reports_line_and_column() {
    let err =
        Config::from_toml_str("[server]\nlisten = \"a\"\nmax_body = = 3\n").expect_err("syntax");
    match &err {
        ConfigError::Syntax {
            origin: Origin::File { line, column, .. },
            ..
        } => {
            assert_eq!(*line, 3);
            assert!(*column > 1, "column {column}");
        }
        other => panic!("not a syntax error: {other:?}"),
    }
    assert!(err.to_string().contains("line 3"), "{err}");
}

#[test]
fn explicit_missing_file_is_an_error_but_implicit_one_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.toml");
    let err = Config::load_with_env(Some(&missing), no_env()).expect_err("missing");
    assert!(matches!(err, ConfigError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.toml"), "{err}");

    // A directory is not a readable file: reported, not treated as absent.
    let err = Config::load_with_env(Some(dir.path()), no_env()).expect_err("a directory");
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
}

#[test]
fn env_overrides_scalars_over_the_file() {
    let vars = env(&[
        ("SANHOOK_SERVER_LISTEN", "127.0.0.1:9999"),
        ("SANHOOK_SERVER_TOKEN", "from-env"),
        ("SANHOOK_SERVER_MAX_BODY", "1MiB"),
        ("SANHOOK_STORAGE_PATH", "/tmp/x.redb"),
        ("SANHOOK_DELIVERY_TIMEOUT", "3s"),
        ("SANHOOK_DELIVERY_ALLOW_PRIVATE", "1"),
        ("SANHOOK_SANPLEX_LANG", "en"),
        ("SANHOOK_LIMITS_DINGTALK_THROTTLE", "1m"),
        ("SANHOOK_PLATFORMS_FEISHU", "http://127.0.0.1:1"),
        ("SANHOOK_SANPLEX_DB_START_AT", "end"),
        ("SANHOOK_CLUSTER_NATS", "nats://127.0.0.1:4222"),
        ("SANHOOK_CLUSTER_SHARDS", "8"),
        ("PATH", "/usr/bin"),
    ]);
    let c = Config::load_with_env(Some(&fixture("good/full.toml")), vars).expect("loads");
    assert_eq!(c.server.listen, "127.0.0.1:9999");
    assert_eq!(c.server.token, "from-env");
    assert_eq!(c.server.max_body, 1024 * 1024);
    assert_eq!(c.storage.path, PathBuf::from("/tmp/x.redb"));
    assert_eq!(c.delivery.timeout, secs(3));
    assert!(c.delivery.allow_private);
    assert_eq!(c.sanplex.lang, Lang::En);
    assert_eq!(c.limits.dingtalk_throttle, secs(60));
    assert_eq!(c.platforms.feishu, "http://127.0.0.1:1");
    assert_eq!(c.sanplex_db.start_at, StartAt::End);
    assert_eq!(c.cluster.nats, "nats://127.0.0.1:4222");
    assert_eq!(c.cluster.shards, 8);
    // Untouched keys keep the file's values.
    assert_eq!(c.storage.retention, secs(7 * 86_400));
}

#[test]
fn env_longest_section_wins() {
    let mut c = Config::default();
    c.apply_env(env(&[
        ("SANHOOK_SANPLEX_DB_URL", "mysql://u:p@h/db"),
        ("SANHOOK_SANPLEX_DB_POLL_INTERVAL", "2s"),
        ("SANHOOK_SANPLEX_BASE_URL", "https://pms.example.com"),
    ]))
    .expect("applies");
    assert_eq!(c.sanplex_db.url, "mysql://u:p@h/db");
    assert_eq!(c.sanplex_db.poll_interval, secs(2));
    assert_eq!(c.sanplex.base_url, "https://pms.example.com");
    assert_eq!(
        env_target("SANHOOK_SANPLEX_DB_URL", "SANPLEX_DB_URL").expect("maps"),
        ("sanplex_db", "url".to_string())
    );
}

#[test]
fn env_booleans() {
    for (text, want) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("false", false),
        ("0", false),
    ] {
        let mut c = Config::default();
        c.delivery.allow_private = !want;
        c.apply_env(env(&[("SANHOOK_DELIVERY_ALLOW_PRIVATE", text)]))
            .expect("applies");
        assert_eq!(c.delivery.allow_private, want, "{text}");
    }
    let err = Config::default()
        .apply_env(env(&[("SANHOOK_DELIVERY_ALLOW_PRIVATE", "yes")]))
        .expect_err("yes is not a boolean");
    assert_eq!(err.key(), Some("delivery.allow_private"));
    assert!(
        err.to_string().contains("SANHOOK_DELIVERY_ALLOW_PRIVATE"),
        "{err}"
    );
}

#[test]
fn env_ignores_what_is_not_an_override() {
    let mut c = Config::default();
    c.apply_env(env(&[
        ("SANHOOK_TEST_FAKE_PORT", "1"),
        ("SANHOOK_LOG", "debug"),
        ("SANHOOK_LOG_FORMAT", "json"),
        ("SANHOOK_CONFIG", "/etc/sanhook.toml"),
        ("NOT_SANHOOK_SERVER_LISTEN", "x"),
    ]))
    .expect("nothing to apply");
    assert_eq!(c, Config::default());
}

#[test]
fn env_errors_name_the_variable() {
    // (variable, value, what the message must contain, the key it is about)
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("SANHOOK_SERVER_LISEN", "x", "SANHOOK_SERVER_LISTEN", None),
        ("SANHOOK_SERVR_LISTEN", "x", "SANHOOK_SERVR_LISTEN", None),
        ("SANHOOK_SERVER_listen", "x", "upper case", None),
        (
            "SANHOOK_DELIVERY_RETRY_SCHEDULE",
            "5s",
            "file only",
            Some("delivery.retry_schedule"),
        ),
        (
            "SANHOOK_LIMITS_DINGGROUP",
            "1/1s",
            "file only",
            Some("limits.dinggroup"),
        ),
        ("SANHOOK_TAIL_PATH", "x", "file only", Some("tail.path")),
        (
            "SANHOOK_DELIVERY_TIMEOUT",
            "10",
            "\"10s\"",
            Some("delivery.timeout"),
        ),
        (
            "SANHOOK_SERVER_MAX_BODY",
            "lots",
            "MiB",
            Some("server.max_body"),
        ),
        ("SANHOOK_SANPLEX_LANG", "de", "zh-cn", Some("sanplex.lang")),
    ];
    for (var, value, text, key) in cases {
        let err = Config::default()
            .apply_env(env(&[(var, value)]))
            .expect_err(var);
        let msg = err.to_string();
        assert!(msg.contains(var), "{var}: {msg}");
        assert!(msg.contains(text), "{var}: {msg} lacks {text}");
        assert_eq!(err.key(), *key, "{var}: {msg}");
    }
}

#[test]
fn env_secret_in_bad_value_is_not_echoed() {
    let err = Config::load_with_env(
        None,
        env(&[("SANHOOK_SANPLEX_DB_URL", "postgres://u:hunter2@h/db")]),
    )
    .expect_err("not mysql");
    assert_eq!(err.key(), Some("sanplex_db.url"));
    assert!(!err.to_string().contains("hunter2"), "{err}");
    // A value refused by validate() is traced back to the variable that set it.
    assert!(err.to_string().contains("SANHOOK_SANPLEX_DB_URL"), "{err}");
}

#[test]
fn render_effective_round_trips() {
    let mut full =
        Config::load_with_env(Some(&fixture("good/full.toml")), no_env()).expect("loads");
    // Without secrets nothing is masked, so the rendering must read back identically.
    full.server.token.clear();
    full.sanplex_db.url = "mysql://reader@db.internal/zentao".into();
    full.delivery.proxy = "http://proxy.internal:3128".into();
    full.cluster.nats = "nats://10.0.0.5:4222,tls://10.0.0.6:4222".into();
    for config in [Config::default(), full] {
        let text = config.render_effective();
        let back = Config::from_toml_str(&text).expect("rendering parses");
        assert_eq!(back, config, "{text}");
    }
}

#[test]
fn render_effective_uses_human_units() {
    let text = Config::default().render_effective();
    for line in [
        "max_body = \"16MiB\"",
        "max_events = 20000",
        "retention = \"30d\"",
        "timeout = \"10s\"",
        "async_interval = \"1m\"",
        "retry_schedule = [\"5s\", \"30s\", \"2m\", \"10m\", \"30m\", \"1h\", \"3h\", \"6h\"]",
        "feishugroup = [\"5/1s\", \"100/1m\"]",
        "allow_private = true",
        "lang = \"en\"",
        "start_at = \"end\"",
        "[sanplex_db]",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn render_effective_masks_secrets() {
    let c = Config::load_with_env(Some(&fixture("good/full.toml")), no_env()).expect("loads");
    let text = c.render_effective();
    assert!(!text.contains("s3cret-token"), "{text}");
    assert!(!text.contains("w0rd"), "{text}");
    assert!(!text.contains("pr0xy-pw"), "{text}");
    assert!(!text.contains("n4ts-pw"), "{text}");
    assert!(
        text.contains("proxy = \"http://squid:******@proxy.internal:3128\""),
        "{text}"
    );
    assert!(text.contains("token = \"******\""), "{text}");
    assert!(
        text.contains("url = \"mysql://reader:******@db.internal:3306/zentao\""),
        "{text}"
    );
    let back = Config::from_toml_str(&text).expect("masked rendering parses");
    assert_eq!(back.server.token, MASK);
    assert_eq!(back.tail, c.tail);
    // A path that is not UTF-8 (an embedder's) is shown, not a panic.
    let mut odd = Config::default();
    let bytes: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(b"/tmp/\xff.redb");
    odd.storage.path = bytes.into();
    assert!(odd
        .render_effective()
        .contains("path = \"/tmp/\u{fffd}.redb\""));
    // An empty token stays visibly empty: masking it would hide that auth is off.
    assert!(Config::default()
        .render_effective()
        .contains("token = \"\""));
}

#[test]
fn secrets_never_show_in_urls_or_debug() {
    let mut c = Config::load_with_env(Some(&fixture("good/full.toml")), no_env()).expect("loads");
    c.sanplex.base_url = "https://pm:base-pw@pms.example.com/zentao".into();
    c.platforms.dingtalk = "https://u:ding-pw@oapi.example.com".into();
    c.platforms.wecom = "https://qy.example.com/?access_token=wecom-tok".into();
    let text = c.render_effective();
    let debug = format!("{c:?} {:?} {:?}", c.server, c.sanplex_db);
    for shown in [&text, &debug] {
        let secrets = [
            "s3cret-token",
            "w0rd",
            "base-pw",
            "ding-pw",
            "wecom-tok",
            "n4ts-pw",
        ];
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
    assert!(
        text.contains("base_url = \"https://pm:******@pms.example.com/zentao\""),
        "{text}"
    );
    assert!(debug.contains("max_in_flight: 32"), "{debug}");
    let err = Config::from_toml_str("[platforms]\nwecom = \"ftp://u:ftp-pw@h/\"\n")
        .and_then(|c| c.validate())
        .expect_err("not http");
    assert!(!err.to_string().contains("ftp-pw"), "{err}");
}

#[test]
fn durations_parse_and_format() {
    let ok: &[(&str, u64, &str)] = &[
        ("500ms", 500, "500ms"),
        ("10s", 10_000, "10s"),
        (" 90s ", 90_000, "90s"),
        ("2m", 120_000, "2m"),
        ("1h", 3_600_000, "1h"),
        ("30d", 2_592_000_000, "30d"),
        ("1500ms", 1_500, "1500ms"),
        ("0s", 0, "0s"),
        ("60s", 60_000, "1m"),
    ];
    for (text, ms, rendered) in ok {
        let d = parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(d, Duration::from_millis(*ms), "{text}");
        assert_eq!(format_duration(d), *rendered, "{text}");
    }
    for bad in [
        "10",
        "",
        "s",
        "1.5s",
        "-1s",
        "10 sec",
        "10S",
        "1w",
        "18446744073709551615d",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
    }
    assert!(parse_duration("10")
        .expect_err("no unit")
        .contains("\"10s\""));
    // Huge values are accepted up to what every clock they meet can hold, and refused past it.
    for huge in ["182500000d", "106751991167d"] {
        let d = parse_duration(huge).unwrap_or_else(|e| panic!("{huge}: {e}"));
        assert!(i64::try_from(d.as_millis()).is_ok(), "{huge}");
        assert!(std::time::Instant::now().checked_add(d).is_some(), "{huge}");
        let text = format!("[storage]\nretention = \"{huge}\"\n[delivery]\ntimeout = \"{huge}\"\n");
        let c = Config::from_toml_str(&text).expect("parses");
        c.validate().expect("valid");
        assert_eq!(
            Config::from_toml_str(&c.render_effective()).expect("parses"),
            c
        );
    }
    let err = parse_duration("106751991168d").expect_err("too large");
    assert!(err.contains("at most 106751991167d"), "{err}");
}

#[test]
fn sizes_parse_and_format() {
    let ok: &[(&str, u64, &str)] = &[
        ("123", 123, "123"),
        ("123B", 123, "123"),
        ("1KiB", 1024, "1KiB"),
        ("16MiB", 16 << 20, "16MiB"),
        ("16 mib", 16 << 20, "16MiB"),
        ("2GiB", 2 << 30, "2GiB"),
        ("1536KiB", 1536 << 10, "1536KiB"),
        ("1025", 1025, "1025"),
        ("0", 0, "0"),
    ];
    for (text, n, rendered) in ok {
        assert_eq!(text.parse(), Ok(Size(*n)), "{text}");
        assert_eq!(Size(*n).to_string(), *rendered, "{text}");
    }
    assert_eq!("8589934591GiB".parse(), Ok(Size(8589934591 << 30)));
    for bad in [
        "16MB",
        "1.5MiB",
        "",
        "MiB",
        "-1",
        "99999999999GiB",
        "8589934592GiB",
    ] {
        assert!(bad.parse::<Size>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn windows_parse_and_format() {
    assert_eq!("20/60s".parse(), Ok(w(20, secs(60))));
    assert_eq!(" 5 / 1s".parse(), Ok(w(5, secs(1))));
    assert_eq!(w(100, secs(60)).to_string(), "100/1m");
    for bad in ["20", "20/60", "/60s", "x/1s", "-1/1s", "20/60s/1"] {
        assert!(bad.parse::<Window>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn token_is_required_off_loopback() {
    // (listen, token, loopback, refused)
    let cases = [
        ("127.0.0.1:8930", "", true, false),
        ("[::1]:8930", "", true, false),
        ("0.0.0.0:8930", "", false, true),
        ("0.0.0.0:8930", "t", false, false),
        ("192.168.1.5:80", "", false, true),
        ("localhost:8930", "", false, true),
    ];
    for (listen, token, loopback, refused) in cases {
        let mut c = Config::default();
        c.server.listen = listen.into();
        c.server.token = token.into();
        assert_eq!(c.listen_is_loopback(), loopback, "{listen}");
        let err = c.token_required_error();
        assert_eq!(err.is_some(), refused, "{listen} {token:?}");
        if let Some(msg) = err {
            assert!(
                msg.contains("server.token") && msg.contains(listen),
                "{msg}"
            );
        }
    }
}

#[test]
fn validate_names_each_bad_key() {
    type Edit = fn(&mut Config);
    let cases: &[(&str, Edit)] = &[
        ("server.listen", |c| c.server.listen = "8930".into()),
        ("server.max_body", |c| c.server.max_body = 1023),
        ("server.max_events", |c| c.server.max_events = 0),
        ("storage.path", |c| c.storage.path = PathBuf::new()),
        ("sanplex.base_url", |c| {
            c.sanplex.base_url = "/zentao".into()
        }),
        ("platforms.dingtalk", |c| {
            c.platforms.dingtalk = "https://".into()
        }),
        ("platforms.feishu", |c| {
            c.platforms.feishu = "file:///x".into()
        }),
        ("delivery.retry_schedule", |c| {
            c.delivery.retry_schedule.clear()
        }),
        ("delivery.timeout", |c| c.delivery.timeout = Duration::ZERO),
        ("delivery.proxy", |c| {
            c.delivery.proxy = "socks5://127.0.0.1:1080".into()
        }),
        ("delivery.proxy", |c| c.delivery.proxy = "proxy:3128".into()),
        ("delivery.async_interval", |c| {
            c.delivery.async_interval = Duration::ZERO
        }),
        ("limits.wechatgroup[0]", |c| {
            c.limits.wechatgroup = vec![w(1, Duration::ZERO)]
        }),
        ("limits.wechatuser_member[0]", |c| {
            c.limits.wechatuser_member = vec![w(0, secs(1))]
        }),
        ("tail[0].path", |c| {
            c.tail.push(TailConfig {
                path: " ".into(),
                start_at: StartAt::End,
                max_line: 1,
            })
        }),
        ("tail[0].path", |c| {
            c.tail.push(TailConfig {
                path: "/var/log/[oops/*.ndjson".into(),
                start_at: StartAt::End,
                max_line: 1,
            })
        }),
        ("sanplex_db.url", |c| c.sanplex_db.url = "mysql:/x".into()),
        ("cluster.nats", |c| c.cluster.nats = "10.0.0.5:4222".into()),
        ("cluster.nats", |c| c.cluster.nats = "nats://a:4222,".into()),
        ("cluster.name", |c| c.cluster.name = String::new()),
        ("cluster.name", |c| c.cluster.name = "a.b".into()),
        ("cluster.node_id", |c| c.cluster.node_id = "node 1".into()),
        ("cluster.shards", |c| c.cluster.shards = 0),
        ("cluster.shards", |c| c.cluster.shards = 4097),
        ("cluster.lease", |c| c.cluster.lease = Duration::ZERO),
        ("sanplex_db.poll_interval", |c| {
            c.sanplex_db.url = "mysql://h/db".into();
            c.sanplex_db.poll_interval = Duration::ZERO;
        }),
    ];
    for (key, edit) in cases {
        let mut c = Config::default();
        edit(&mut c);
        let err = c.validate().expect_err(key);
        assert_eq!(err.key(), Some(*key), "{err}");
        assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
    }
}
