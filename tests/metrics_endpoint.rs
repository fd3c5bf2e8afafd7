//! The `metrics_endpoint` example, run as a program: its admin port answers `/metrics`, `/leaks` and `/diff` over
//! loopback HTTP, what it reports moves as clients echo, and what a client sends to the admin port is bounded in
//! size and time.

// Each test binary uses part of the support module.
#[allow(dead_code)]
#[path = "support/metrics_endpoint.rs"]
mod support;

use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use support::{connect, echo, frame, read_response, request, value, Endpoint};

/// The tests start servers and time answers: one at a time, on a machine shared with other work.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `f` every 50 ms until it returns `Some`, at most `wait`.
fn eventually<T>(wait: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + wait;
    loop {
        if let Some(found) = f() {
            return Some(found);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn each_path_answers_with_its_status_and_type_and_closes() {
    let _serial = serial();
    let server = Endpoint::start(&[]);

    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200, "{}", metrics.head);
    assert_eq!(
        metrics.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(metrics.header("Connection"), Some("close"));
    assert_eq!(
        metrics.header("Content-Length"),
        Some(metrics.body.len().to_string().as_str())
    );
    assert!(
        metrics
            .body
            .contains("# TYPE tidegate_budget_used_bytes gauge\n"),
        "{}",
        metrics.body
    );
    for line in metrics.body.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("tidegate_"), "unprefixed series {line:?}");
        let number = line.rsplit(' ').next().unwrap();
        assert!(number.parse::<f64>().is_ok(), "no value in {line:?}");
    }

    for path in ["/leaks", "/diff", "/diff?from=start"] {
        let answer = server.get(path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.head);
        assert_eq!(
            answer.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(answer.header("Connection"), Some("close"));
    }
    assert!(server.get("/leaks").body.contains("hold memory"));

    for path in ["/", "/metricsx", "/metrics/", "/leak"] {
        assert_eq!(server.get(path).status, 404, "{path}");
    }
    let post = request(
        server.admin,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("Allow"), Some("GET"));
    let garbage = request(server.admin, b"hello\r\n\r\n");
    assert_eq!(garbage.status, 400);
}

#[test]
fn metrics_count_exactly_what_clients_did() {
    let _serial = serial();
    let server = Endpoint::start(&[]);
    let before = server.scrape();
    // Two connections of 20 frames of 100 bytes; each ends (server side too) before `echo` returns.
    echo(server.echo, 20, 100);
    echo(server.echo, 20, 100);
    // The executor counts a task done a moment after its answer was queued, and the peer may read it before; a
    // connection's queue, permit and reservations go when its tasks have ended, a moment after the peer saw the
    // close. Wait (at most 5 s) for all of them to be back at 0; every other count below was made before the
    // echo reached the client.
    let held = [
        r#"tidegate_limiter_active{name="echo-limit"}"#,
        r#"tidegate_queue_members{name="echo-queues"}"#,
        r#"tidegate_queue_queued_bytes{name="echo-queues"}"#,
        r#"tidegate_exec_in_flight{name="handlers"}"#,
        r#"tidegate_pool_outstanding_bytes{name="answers"}"#,
        r#"tidegate_budget_used_bytes{name="connections"}"#,
    ];
    let after = eventually(Duration::from_secs(5), || {
        let metrics = server.scrape();
        held.iter()
            .all(|series| value(&metrics, series) == Some(0.0))
            .then_some(metrics)
    })
    .expect("everything held for the connections goes with them");
    let grew = |series: &str| {
        let was = value(&before, series).unwrap_or_else(|| panic!("{series} in\n{before}"));
        let is = value(&after, series).unwrap_or_else(|| panic!("{series} in\n{after}"));
        is - was
    };
    assert_eq!(
        grew(r#"tidegate_listener_accepted_total{name="echo"}"#),
        2.0
    );
    assert_eq!(
        grew(r#"tidegate_limiter_accepted_total{name="echo-limit"}"#),
        2.0
    );
    assert_eq!(
        grew(r#"tidegate_codec_frames_total{name="echo-frames"}"#),
        40.0
    );
    assert_eq!(
        grew(r#"tidegate_codec_bytes_total{name="echo-frames"}"#),
        4000.0
    );
    assert_eq!(
        grew(r#"tidegate_exec_admitted_total{name="handlers"}"#),
        40.0
    );
    assert_eq!(
        grew(r#"tidegate_exec_completed_total{name="handlers"}"#),
        40.0
    );
    assert_eq!(
        grew(r#"tidegate_pool_acquired_total{name="answers"}"#),
        40.0
    );
    assert_eq!(
        grew(r#"tidegate_queue_sent_bytes_total{name="echo-queues"}"#),
        40.0 * 104.0
    );
    assert!(
        value(
            &after,
            r#"tidegate_process_resident_memory_bytes{name="process"}"#
        )
        .unwrap()
            > 0.0
    );
    assert!(value(&after, r#"tidegate_process_open_fds{name="process"}"#).unwrap() > 0.0);
}

/// The rows of a `/diff` answer's "grew" table.
fn grew(diff: &str) -> Vec<&str> {
    let table = diff.split("\nshrank").next().unwrap();
    table.lines().filter(|l| l.contains("tidegate_")).collect()
}

#[test]
fn diff_names_what_grew_since_the_previous_diff() {
    let _serial = serial();
    let server = Endpoint::start(&[]);
    let named = [
        r#"tidegate_listener_accepted_total{name="echo"}"#,
        r#"tidegate_codec_frames_total{name="echo-frames"}"#,
        r#"tidegate_exec_admitted_total{name="handlers"}"#,
    ];
    // Since the start: nothing echoed yet.
    let first = server.get("/diff").body;
    for series in named {
        assert!(
            !grew(&first).iter().any(|row| row.ends_with(series)),
            "{first}"
        );
    }

    echo(server.echo, 10, 1000);
    let second = server.get("/diff").body;
    for (series, by) in named.iter().zip(["+1 ", "+10 ", "+10 "]) {
        assert!(
            grew(&second)
                .iter()
                .any(|row| row.ends_with(series) && row.trim_start().starts_with(by)),
            "{series} grew {by}, /diff says:\n{second}"
        );
    }

    // Nothing echoed since the previous /diff: none of them is named again.
    let third = server.get("/diff").body;
    for series in named {
        assert!(
            !grew(&third).iter().any(|row| row.ends_with(series)),
            "{third}"
        );
    }
}

#[test]
fn leaks_show_what_a_peer_that_does_not_read_holds_until_it_leaves() {
    let _serial = serial();
    let server = Endpoint::start(&["--leak-age-ms", "100", "--evict-after-ms", "0"]);
    let mut stuck = connect(server.echo);
    stuck
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Frames until the server stops reading: its answers fill the socket buffers, then its queue.
    let big = frame(&vec![7u8; 60 * 1024]);
    // Whole frames only: after the first write that times out (perhaps part-way) nothing more is sent, so the
    // server never sees a misaligned header.
    let mut sent = 0usize;
    while sent < 256 << 20 && stuck.write_all(&big).is_ok() {
        sent += big.len();
    }
    assert!(sent < 256 << 20, "the server never stopped reading");
    let listed = eventually(Duration::from_secs(10), || {
        let leaks = server.get("/leaks").body;
        leaks
            .contains("acquired at examples/metrics_endpoint.rs")
            .then_some(leaks)
    })
    .expect("/leaks lists the answers queued for the peer");
    assert!(
        listed.contains(" answers, "),
        "the pool is the part named: {listed}"
    );
    let metrics = server.scrape();
    let used = value(
        &metrics,
        r#"tidegate_budget_used_bytes{name="connections"}"#,
    )
    .unwrap();
    assert!(used > 0.0, "the stuck queue is charged to the budget");
    let unwritable = r#"tidegate_queue_unwritable{name="echo-queues"}"#;
    assert_eq!(value(&metrics, unwritable), Some(1.0), "{metrics}");

    drop(stuck);
    let gone = eventually(Duration::from_secs(10), || {
        let leaks = server.get("/leaks").body;
        (!leaks.contains("acquired at")).then_some(leaks)
    });
    assert!(gone.is_some(), "the peer left, its buffers should have too");
    let metrics = eventually(Duration::from_secs(10), || {
        let metrics = server.scrape();
        let used = r#"tidegate_budget_used_bytes{name="connections"}"#;
        (value(&metrics, used) == Some(0.0)).then_some(metrics)
    })
    .expect("the budget is whole again once the peer left");
    assert_eq!(value(&metrics, unwritable), Some(0.0), "{metrics}");
}

#[test]
fn an_oversized_request_head_is_refused_and_closed() {
    let _serial = serial();
    let server = Endpoint::start(&[]);
    let mut stream = connect(server.admin);
    // 16 KiB of headers and no blank line: twice the limit, small enough to sit in the socket buffers.
    let mut raw = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while raw.len() < 16 * 1024 {
        raw.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    stream.write_all(&raw).unwrap();
    let answer = read_response(&mut stream);
    assert_eq!(answer.status, 431, "{}", answer.head);
    // The admin port still serves.
    assert_eq!(server.get("/metrics").status, 200);
}

#[test]
fn a_slow_request_head_is_cut_at_the_timeout_without_holding_others() {
    let _serial = serial();
    let server = Endpoint::start(&["--admin-timeout-ms", "500"]);
    let started = Instant::now();
    let mut slow = connect(server.admin);
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: local")
        .unwrap();
    // Served while the slow one waits.
    assert_eq!(server.get("/leaks").status, 200);
    let answer = read_response(&mut slow);
    let took = started.elapsed();
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert!(
        took >= Duration::from_millis(450),
        "cut after {took:?}, before the 500 ms timeout"
    );
    assert!(took < Duration::from_secs(5), "cut only after {took:?}");
    // A trickle does not extend the deadline: it bounds the whole head, not each read. One byte every 100 ms
    // for a second would keep a per-read timeout of 500 ms waiting until after the trickle.
    let started = Instant::now();
    let mut trickle = connect(server.admin);
    let mut writer = trickle.try_clone().unwrap();
    let trickler = std::thread::spawn(move || {
        for byte in b"GET /metri" {
            std::thread::sleep(Duration::from_millis(100));
            if writer.write_all(&[*byte]).is_err() {
                break;
            }
        }
    });
    let answer = read_response(&mut trickle);
    let took = started.elapsed();
    trickler.join().unwrap();
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert!(
        took < Duration::from_millis(900),
        "cut after {took:?}: the trickle extended the deadline"
    );
}

#[test]
fn only_loopback_addresses_are_served() {
    for flag in ["--listen", "--admin"] {
        let output = std::process::Command::new(support::binary())
            .args([flag, "0.0.0.0:0"])
            .output()
            .expect("run metrics_endpoint");
        assert_eq!(output.status.code(), Some(2), "{flag} 0.0.0.0:0");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("loopback"), "{stderr}");
    }
}

#[test]
fn sigterm_ends_the_server_with_a_report() {
    let _serial = serial();
    let mut server = Endpoint::start(&[]);
    echo(server.echo, 3, 10);
    assert!(server.stop().success());
    let line = server
        .line_containing("final:", Duration::from_secs(2))
        .expect("a final report line");
    assert!(line.contains("connections=1"), "{line}");
}

#[test]
fn sighup_applies_the_config_file_and_a_refused_file_changes_nothing() {
    let _serial = serial();
    let path = std::env::temp_dir().join(format!("tidegate-endpoint-{}.conf", std::process::id()));
    std::fs::write(&path, "handlers.max_concurrency = 8\n").unwrap();
    let server = Endpoint::start(&["--config", path.to_str().unwrap()]);
    let gauge = |name: &str| {
        let series = format!("tidegate_exec_{name}{{name=\"handlers\"}}");
        value(&server.scrape(), &series)
    };
    let wait_for = |name: &str, want: f64| {
        let until = Instant::now() + Duration::from_secs(5);
        while gauge(name) != Some(want) {
            assert!(
                Instant::now() < until,
                "{name} did not become {want} within 5 s of SIGHUP"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(gauge("max_concurrency"), Some(8.0), "applied at start");

    std::fs::write(
        &path,
        "handlers.max_concurrency = 3\nconnections.limit = 33554432\n",
    )
    .unwrap();
    server.hangup();
    wait_for("max_concurrency", 3.0);
    let text = server.scrape();
    let budget = r#"tidegate_budget_limit_bytes{name="connections"}"#;
    assert_eq!(value(&text, budget), Some(33554432.0));

    // A refused file (an unknown part, a budget that cannot be off) changes nothing; the next good file (which
    // names another key only) applies after it, and the limit the refused one named is still 3.
    std::fs::write(
        &path,
        "handlers.max_concurrency = 5\nconnections.limit = off\nnobody.limit = 1\n",
    )
    .unwrap();
    server.hangup();
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(&path, "handlers.max_pending = 77\n").unwrap();
    server.hangup();
    wait_for("max_pending", 77.0);
    assert_eq!(gauge("max_concurrency"), Some(3.0));
    assert_eq!(value(&server.scrape(), budget), Some(33554432.0));
    echo(server.echo, 3, 10);
    let _ = std::fs::remove_file(&path);
}
